// The fusedrnn._cuda extension module: the CUDA recurrent ops and their helpers.
//
// Arrays cross this boundary as raw device pointers (Python ints) with the sizes in a dict;
// fusedrnn/ops/_cuda_recurrent.py validates everything, allocates the outputs and the workspace
// with the caller's library (CuPy or PyTorch) and passes that library's current stream.
// CUDA and cuBLAS failures raise RuntimeError with the error's name and description; bad
// arguments that get past the Python checks raise ValueError.
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/kernels.h"
#include "cuda/recurrent.h"

namespace py = pybind11;

namespace fusedrnn {
namespace cuda {
namespace {

std::atomic<bool> g_poison{false};
std::atomic<bool> g_allow_tf32{false};
std::atomic<bool> g_sync_after_ops{false};

// Makes `device` current for the lifetime of the guard.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    FUSEDRNN_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) FUSEDRNN_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }  // best effort while unwinding
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// ---- reading the argument dict ----------------------------------------------------------------

struct Args {
  const py::dict& d;

  bool has(const char* key) const { return d.contains(key) && !d[key].is_none(); }
  std::uintptr_t ptr(const char* key) const { return has(key) ? d[key].cast<std::uintptr_t>() : 0; }
  int integer(const char* key) const {
    if (!has(key)) throw py::value_error(std::string("fusedrnn._cuda: missing argument '") + key + "'");
    return d[key].cast<int>();
  }
  bool flag(const char* key) const { return has(key) && d[key].cast<bool>(); }
  std::string str(const char* key) const {
    if (!has(key)) throw py::value_error(std::string("fusedrnn._cuda: missing argument '") + key + "'");
    return d[key].cast<std::string>();
  }
  template <typename T>
  T* p(const char* key) const {
    return reinterpret_cast<T*>(ptr(key));
  }
};

CellConfig make_config(const Args& a) {
  CellConfig cfg;
  const std::string cell = a.str("cell"), activation = a.has("activation") ? a.str("activation") : "tanh";
  if (cell == "rnn") cfg.kind = Cell::kRnn;
  else if (cell == "lstm") cfg.kind = Cell::kLstm;
  else if (cell == "gru") cfg.kind = Cell::kGru;
  else throw py::value_error("cell: expected 'rnn', 'lstm' or 'gru', got '" + cell + "'");
  if (activation == "tanh") cfg.activation = 0;
  else if (activation == "relu") cfg.activation = 1;
  else throw py::value_error("activation: expected 'tanh' or 'relu', got '" + activation + "'");
  cfg.reset_after = a.flag("reset_after");
  return cfg;
}

bool is_double(const Args& a) {
  const std::string dtype = a.str("dtype");
  if (dtype == "float64") return true;
  if (dtype == "float32") return false;
  throw py::type_error("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
}

template <typename T>
Problem<T> make_problem(const CellConfig& cfg, const Args& a) {
  Problem<T> p;
  p.batch = a.integer("batch");
  p.steps = a.integer("steps");
  p.input_size = a.integer("input_size");
  p.units = a.integer("units");
  p.gates = cfg.gates();
  p.x = a.p<const T>("x");
  p.h0 = a.p<const T>("h0");
  p.c0 = a.p<const T>("c0");
  p.kernel = a.p<const T>("kernel");
  p.recurrent = a.p<const T>("recurrent_kernel");
  p.bias = a.p<const T>("bias");
  if (cfg.kind == Cell::kGru && cfg.reset_after && p.bias) p.recurrent_bias = p.bias + p.width();
  p.mask = a.p<const uint8_t>("mask");
  p.dropout = a.p<const T>("dropout_mask");
  p.n_dropout = p.dropout ? a.integer("n_dropout") : 0;
  p.recurrent_dropout = a.p<const T>("recurrent_dropout_mask");
  p.n_recurrent_dropout = p.recurrent_dropout ? a.integer("n_recurrent_dropout") : 0;
  p.go_backwards = a.flag("go_backwards");
  return p;
}

RunOptions run_options(const Args& a) {
  RunOptions o;
  o.stream = as_stream(a.ptr("stream"));
  o.allow_tf32 = g_allow_tf32.load();
  o.poison = g_poison.load();
  return o;
}

void finish(cudaStream_t stream) {
  if (g_sync_after_ops.load()) FUSEDRNN_CUDA_CHECK(cudaStreamSynchronize(stream));
}

// ---- entry points -----------------------------------------------------------------------------

template <typename T>
size_t workspace_impl(const Args& a, bool forward) {
  const CellConfig cfg = make_config(a);
  const Problem<T> p = make_problem<T>(cfg, a);
  return forward ? forward_workspace_bytes(cfg, p) : backward_workspace_bytes(cfg, p);
}

size_t workspace_bytes(const py::dict& d, bool forward) {
  const Args a{d};
  return is_double(a) ? workspace_impl<double>(a, forward) : workspace_impl<float>(a, forward);
}

template <typename T>
void forward_impl(const Args& a) {
  const CellConfig cfg = make_config(a);
  const Problem<T> p = make_problem<T>(cfg, a);
  const Saved<T> saved{a.p<T>("gates"), a.p<T>("hprev"), a.p<T>("aux")};
  const Outputs<T> out{a.p<T>("outputs"), a.p<T>("h_last"), a.p<T>("c_last")};
  const RunOptions opt = run_options(a);
  void* ws = a.p<void>("workspace");
  const size_t ws_bytes = a.has("workspace_bytes") ? a.d["workspace_bytes"].cast<size_t>() : 0;
  const DeviceGuard guard(a.integer("device"));
  {
    py::gil_scoped_release release;
    recurrent_forward(cfg, p, saved, out, ws, ws_bytes, opt);
    finish(opt.stream);
  }
}

template <typename T>
void backward_impl(const Args& a) {
  const CellConfig cfg = make_config(a);
  const Problem<T> p = make_problem<T>(cfg, a);
  const Saved<T> saved{a.p<T>("gates"), a.p<T>("hprev"), a.p<T>("aux")};
  const Incoming<T> incoming{a.p<const T>("d_outputs"), a.p<const T>("d_h_last"), a.p<const T>("d_c_last")};
  T* dbias = a.p<T>("d_bias");
  const bool two_biases = cfg.kind == Cell::kGru && cfg.reset_after;
  const Grads<T> grads{a.p<T>("dx"),         a.p<T>("dh0"),
                       a.p<T>("dc0"),        a.p<T>("d_kernel"),
                       a.p<T>("d_recurrent_kernel"), dbias,
                       two_biases && dbias ? dbias + p.width() : nullptr};
  const RunOptions opt = run_options(a);
  void* ws = a.p<void>("workspace");
  const size_t ws_bytes = a.has("workspace_bytes") ? a.d["workspace_bytes"].cast<size_t>() : 0;
  const DeviceGuard guard(a.integer("device"));
  {
    py::gil_scoped_release release;
    recurrent_backward(cfg, p, saved, incoming, grads, ws, ws_bytes, opt);
    finish(opt.stream);
  }
}

void forward(const py::dict& d) {
  const Args a{d};
  if (is_double(a)) forward_impl<double>(a);
  else forward_impl<float>(a);
}

void backward(const py::dict& d) {
  const Args a{d};
  if (is_double(a)) backward_impl<double>(a);
  else backward_impl<float>(a);
}

// Launches one NaN/inf check per (pointer, element count, is_double) into flags[k] (int32,
// zeroed here); the caller reads the flags back.
void nonfinite_flags(const std::vector<std::tuple<std::uintptr_t, long, bool>>& arrays, std::uintptr_t flags,
                     int device, std::uintptr_t stream) {
  const DeviceGuard guard(device);
  const cudaStream_t st = as_stream(stream);
  int* f = reinterpret_cast<int*>(flags);
  FUSEDRNN_CUDA_CHECK(cudaMemsetAsync(f, 0, arrays.size() * sizeof(int), st));
  for (size_t k = 0; k < arrays.size(); ++k) {
    const auto& [ptr, n, dbl] = arrays[k];
    if (dbl) launch_nonfinite_flag(reinterpret_cast<const double*>(ptr), n, f + k, st);
    else launch_nonfinite_flag(reinterpret_cast<const float*>(ptr), n, f + k, st);
  }
}

// Makes `waiter` wait for the work enqueued so far on `producer` (an event, no host sync).
void stream_wait(std::uintptr_t waiter, std::uintptr_t producer, int device) {
  if (waiter == producer) return;
  const DeviceGuard guard(device);
  cudaEvent_t ev;
  FUSEDRNN_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  cudaError_t err = cudaEventRecord(ev, as_stream(producer));
  if (err == cudaSuccess) err = cudaStreamWaitEvent(as_stream(waiter), ev, 0);
  cudaEventDestroy(ev);  // released once the wait has completed
  check_cuda(err, "cudaEventRecord/cudaStreamWaitEvent", __FILE__, __LINE__);
}

// The device of a device pointer, or -1 when it is not device memory.
int pointer_device(std::uintptr_t ptr) {
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(ptr));
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it: not a pointer the runtime knows
    return -1;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged ? attr.device : -1;
}

int device_count(bool strict) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (strict) check_cuda(err, "cudaGetDeviceCount", __FILE__, __LINE__);
    cudaGetLastError();
    return 0;
  }
  return n;
}

py::dict build_info() {
  py::dict info;
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
  cudaGetLastError();
  info["cuda_runtime_version"] = runtime;
  info["cuda_driver_version"] = driver;
  info["cuda_runtime_compiled"] = CUDART_VERSION;
  info["cublas_compiled"] = CUBLAS_VERSION;
  return info;
}

}  // namespace
}  // namespace cuda
}  // namespace fusedrnn

PYBIND11_MODULE(_cuda, m) {
  namespace fc = fusedrnn::cuda;
  m.doc() = "fusedrnn's CUDA backend (cuBLAS + fused step kernels). Use the typed ops in fusedrnn.ops.";

  m.def("device_count", &fc::device_count, py::arg("strict") = false,
        "Number of CUDA devices; 0 when there is none or no driver (strict=True raises RuntimeError instead).");
  m.def("build_info", &fc::build_info, "CUDA runtime/driver versions and the CUDA/cuBLAS versions compiled against.");
  m.def("pointer_device", &fc::pointer_device, py::arg("ptr"),
        "Device ordinal of a device (or managed) pointer, -1 for anything else.");
  m.def("stream_wait", &fc::stream_wait, py::arg("waiter"), py::arg("producer"), py::arg("device"),
        "Make stream `waiter` wait for the work enqueued on stream `producer` (event based).");
  m.def("nonfinite_flags", &fc::nonfinite_flags, py::arg("arrays"), py::arg("flags"), py::arg("device"),
        py::arg("stream"),
        "For each (ptr, n, is_double), set the int32 flags[k] to 1 if the array holds NaN or inf.");

  m.def("forward_workspace_bytes", [](const py::dict& d) { return fc::workspace_bytes(d, true); }, py::arg("args"));
  m.def("backward_workspace_bytes", [](const py::dict& d) { return fc::workspace_bytes(d, false); }, py::arg("args"));
  m.def("recurrent_forward", &fc::forward, py::arg("args"),
        "Enqueue the fused forward pass on args['stream'] (device pointers in a dict; see _cuda_recurrent.py).");
  m.def("recurrent_backward", &fc::backward, py::arg("args"), "Enqueue the fused backward pass.");

  m.def("set_poison_outputs", [](bool on) { fc::g_poison.store(on); }, py::arg("on"),
        "Test hook: fill every output and the workspace with NaN before the kernels run.");
  m.def("get_poison_outputs", []() { return fc::g_poison.load(); });
  m.def("set_allow_tf32", [](bool on) { fc::g_allow_tf32.store(on); }, py::arg("on"),
        "Let float32 GEMMs use TF32 tensor cores (faster, ~1e-3 relative error; default off).");
  m.def("get_allow_tf32", []() { return fc::g_allow_tf32.load(); });
  m.def("set_sync_after_ops", [](bool on) { fc::g_sync_after_ops.store(on); }, py::arg("on"),
        "Debug hook: synchronise the stream after every op so that kernel faults raise at the op.");
  m.def("get_sync_after_ops", []() { return fc::g_sync_after_ops.load(); });
}
