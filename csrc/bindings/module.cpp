// The fusedrnn._C extension module: threading controls, test hooks and the op registrations.
#include <pybind11/pybind11.h>

#include "bindings/arrays.h"
#include "cpu/blas.h"
#include "cpu/parallel.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "fusedrnn's compiled kernels (CPU backend). Use the typed wrappers in fusedrnn.ops.";
  fusedrnn::cpu::blas_use_single_thread();

  m.def("set_num_threads", &fusedrnn::cpu::set_num_threads, py::arg("n"),
        "Number of threads the CPU kernels use (default: OMP_NUM_THREADS or the core count).");
  m.def("get_num_threads", &fusedrnn::cpu::num_threads);
  m.def("set_poison_outputs", &fusedrnn::cpu::set_poison_outputs, py::arg("on"),
        "Test hook: fill every array the kernels allocate with NaN before they write it.");
  m.def("get_poison_outputs", &fusedrnn::cpu::poison_outputs);
  m.def("set_claim_others_first", &fusedrnn::cpu::BlockClaims::set_claim_others_first, py::arg("on"),
        "Test hook: where the threads claim blocks of the batch, each starts with the blocks of "
        "the other threads' shares.");

  fusedrnn::bindings::register_recurrent(m);
  fusedrnn::bindings::register_attention(m);
  fusedrnn::bindings::register_optimizers(m);
}
