// Helpers to move NumPy arrays across the binding: checked views of inputs and freshly
// allocated outputs (filled with NaN when output poisoning is on, to catch unwritten elements).
//
// The Python layer (fusedrnn/ops/_checks.py) validates arguments and raises precise errors;
// these checks are the safety net that keeps a bad call from reaching the kernels.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <limits>
#include <string>
#include <vector>

#include "bindings/array_pool.h"
#include "cpu/sequence.h"

namespace fusedrnn {
namespace bindings {

namespace py = pybind11;

// Whether `a` is a NumPy array of dtype T in native byte order. The common case (the exact type
// number) is a look at its descriptor; py::isinstance<py::array_t<T>>, which builds a dtype
// object on every call, decides the rest (equivalent type numbers, explicit byte orders).
template <typename T>
bool has_dtype(const py::handle& a) {
  if (!py::isinstance<py::array>(a)) return false;
  const auto* descr = reinterpret_cast<const py::detail::PyArrayDescr_Proxy*>(py::detail::array_proxy(a.ptr())->descr);
  if (descr->type_num == py::detail::npy_format_descriptor<T>::value &&
      (descr->byteorder == '=' || descr->byteorder == '|'))
    return true;
  return py::isinstance<py::array_t<T>>(a);
}

// A C-contiguous array of dtype T with the given shape (-1: any size), or an error naming it.
// Allocation-free: it runs several times on every call of the small-step paths.
template <typename T>
const T* input_ptr(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  if (!has_dtype<T>(a)) throw py::type_error(std::string(name) + ": wrong dtype");
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": must be C-contiguous");
  if (a.ndim() != static_cast<py::ssize_t>(shape.size()))
    throw py::value_error(std::string(name) + ": wrong number of dimensions");
  py::ssize_t k = 0;
  for (py::ssize_t want : shape) {
    if (want >= 0 && a.shape(k) != want) throw py::value_error(std::string(name) + ": wrong shape");
    ++k;
  }
  return static_cast<const T*>(a.data());
}

template <typename T>
const T* optional_input_ptr(const py::object& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  if (a.is_none()) return nullptr;
  return input_ptr<T>(py::reinterpret_borrow<py::array>(a), name, shape);
}

// A new C-contiguous array in recycled memory (array_pool.h), poisoned with NaN when the test
// hook is on (otherwise its contents are undefined until the kernel writes them).
template <typename T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape) {
  size_t count = 1;
  for (py::ssize_t d : shape) count *= static_cast<size_t>(d);
  T* data = static_cast<T*>(pool_allocate(count * sizeof(T)));
  py::capsule owner(data, [](void* p) { pool_release(p); });
  py::array_t<T> a(shape, data, owner);
  if (cpu::poison_outputs()) std::fill(data, data + count, std::numeric_limits<T>::quiet_NaN());
  return a;
}

void register_recurrent(py::module_& m);
void register_packed_recurrent(py::module_& m);
void register_attention(py::module_& m);
void register_optimizers(py::module_& m);

}  // namespace bindings
}  // namespace fusedrnn
