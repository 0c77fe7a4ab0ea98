// The fusedrnn._C extension module: threading controls, test hooks and the op registrations.
#include <pybind11/pybind11.h>

#include "bindings/arrays.h"
#include "cpu/blas.h"
#include "cpu/finite.h"
#include "cpu/parallel.h"
#include "cpu/row_handover.h"

namespace py = pybind11;

namespace {

// True when the float32/float64 array holds no NaN or inf. Takes any C-contiguous array of
// either dtype (the ops check dtype and layout first, with errors naming the argument).
template <typename T>
bool all_finite_of(const py::array& a) {
  const T* p = static_cast<const T*>(a.data());
  const long n = static_cast<long>(a.size());
  py::gil_scoped_release unlocked;
  return fusedrnn::cpu::all_finite(p, n);
}

bool all_finite(const py::array& a) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error("all_finite: the array must be C-contiguous");
  if (fusedrnn::bindings::has_dtype<float>(a)) return all_finite_of<float>(a);
  if (fusedrnn::bindings::has_dtype<double>(a)) return all_finite_of<double>(a);
  throw py::type_error("all_finite: expected a float32 or float64 array");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fusedrnn's compiled kernels (CPU backend). Use the typed wrappers in fusedrnn.ops.";
  fusedrnn::cpu::blas_use_single_thread();

  m.def("set_num_threads", &fusedrnn::cpu::set_num_threads, py::arg("n"),
        "Number of threads the CPU kernels use (default: OMP_NUM_THREADS or the core count).");
  m.def("get_num_threads", &fusedrnn::cpu::num_threads);
  m.def("all_finite", &all_finite, py::arg("a"),
        "Whether a C-contiguous float32/float64 array holds no NaN or inf (one pass, on the kernels' threads).");
  m.def("set_poison_outputs", &fusedrnn::cpu::set_poison_outputs, py::arg("on"),
        "Test hook: fill every array the kernels allocate with NaN before they write it.");
  m.def("get_poison_outputs", &fusedrnn::cpu::poison_outputs);
  m.def("set_claim_others_first", &fusedrnn::cpu::BlockClaims::set_claim_others_first, py::arg("on"),
        "Test hook: where the threads claim blocks of the batch, each starts with the blocks of "
        "the other threads' shares.");

  m.def("set_hold_first_thread_us", &fusedrnn::cpu::RowHandover::set_hold_first_thread_us, py::arg("us"),
        "Test hook: under a split of the batch, thread 0 waits at the start of each of its time loops until "
        "another thread asks it for rows, or at most this long, so that the other threads run out of rows "
        "first and take some of its rows; they wait as long at most for thread 0 to start (0: off).");
  m.def("set_min_parallel_step_macs", &fusedrnn::cpu::set_min_parallel_step_macs, py::arg("n"),
        "Test hook: forward passes whose steps multiply fewer values run on one thread (default 131072; 0: "
        "every problem takes the parallel paths).");
  m.def("get_min_parallel_step_macs", &fusedrnn::cpu::min_parallel_step_macs);
  m.def("handovers_made", &fusedrnn::cpu::RowHandover::handovers_made,
        "Test hook: how many times a forward pass's thread has handed rows to another (since import).");

  fusedrnn::bindings::register_recurrent(m);
  fusedrnn::bindings::register_packed_recurrent(m);
  fusedrnn::bindings::register_attention(m);
  fusedrnn::bindings::register_optimizers(m);
}
