// Bindings of the fused optimizer updates. They update NumPy arrays in place; the Python layer
// (fusedrnn/optimizers.py) checks shapes and dtypes, and these checks keep a bad call from
// reaching the kernels.
#include <string>

#include "bindings/arrays.h"
#include "cpu/optimizers.h"

namespace fusedrnn {
namespace bindings {
namespace {

// A writable C-contiguous array of dtype T with `n` elements, or an error naming it.
template <typename T>
T* inout_ptr(py::array& a, const char* name, py::ssize_t n) {
  if (!has_dtype<T>(a)) throw py::type_error(std::string(name) + ": wrong dtype");
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (!a.writeable()) throw py::value_error(std::string(name) + ": must be writeable");
  if (a.size() != n) throw py::value_error(std::string(name) + ": wrong size");
  return static_cast<T*>(a.mutable_data());
}

template <typename T>
const T* in_ptr(const py::array& a, const char* name, py::ssize_t n) {
  if (!has_dtype<T>(a)) throw py::type_error(std::string(name) + ": wrong dtype");
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (a.size() != n) throw py::value_error(std::string(name) + ": wrong size");
  return static_cast<const T*>(a.data());
}

template <typename T>
void adam(py::array& p, const py::array& g, py::array& m, py::array& v, double alpha, double omb1, double omb2,
          double eps) {
  const py::ssize_t n = p.size();
  T* pp = inout_ptr<T>(p, "param", n);
  const T* gp = in_ptr<T>(g, "grad", n);
  T* mp = inout_ptr<T>(m, "m", n);
  T* vp = inout_ptr<T>(v, "v", n);
  py::gil_scoped_release release;
  cpu::adam_update<T>(n, pp, gp, mp, vp, T(alpha), T(omb1), T(omb2), T(eps));
}

template <typename T>
void rmsprop(py::array& p, const py::array& g, py::array& v, double lr, double rho, double omr, double eps) {
  const py::ssize_t n = p.size();
  T* pp = inout_ptr<T>(p, "param", n);
  const T* gp = in_ptr<T>(g, "grad", n);
  T* vp = inout_ptr<T>(v, "velocity", n);
  py::gil_scoped_release release;
  cpu::rmsprop_update<T>(n, pp, gp, vp, T(lr), T(rho), T(omr), T(eps));
}

bool float64(const py::array& p) {
  if (has_dtype<double>(p)) return true;
  if (has_dtype<float>(p)) return false;
  throw py::type_error("param: expected float32 or float64");
}

}  // namespace

void register_optimizers(py::module_& m) {
  m.def(
      "adam_update",
      [](py::array p, const py::array& g, py::array m_, py::array v, double alpha, double omb1, double omb2,
         double eps) {
        float64(p) ? adam<double>(p, g, m_, v, alpha, omb1, omb2, eps)
                   : adam<float>(p, g, m_, v, alpha, omb1, omb2, eps);
      },
      py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("alpha"), py::arg("one_minus_beta_1"),
      py::arg("one_minus_beta_2"), py::arg("epsilon"),
      "In place: m += (g-m)(1-beta_1); v += (g*g-v)(1-beta_2); param -= (m*alpha)/(sqrt(v)+epsilon). "
      "The scalars are rounded to the param's dtype.");
  m.def(
      "rmsprop_update",
      [](py::array p, const py::array& g, py::array v, double lr, double rho, double omr, double eps) {
        float64(p) ? rmsprop<double>(p, g, v, lr, rho, omr, eps) : rmsprop<float>(p, g, v, lr, rho, omr, eps);
      },
      py::arg("param"), py::arg("grad"), py::arg("velocity"), py::arg("learning_rate"), py::arg("rho"),
      py::arg("one_minus_rho"), py::arg("epsilon"),
      "In place: velocity = velocity*rho + (g*g)*(1-rho); param -= (g*learning_rate)/sqrt(velocity+epsilon). "
      "The scalars are rounded to the param's dtype.");
}

}  // namespace bindings
}  // namespace fusedrnn
