#include "cpu/recurrent.h"

#include <algorithm>
#include <atomic>

#include "cpu/cells.h"

namespace fusedrnn {
namespace cpu {

template <typename T>
void recurrent_forward(const CellConfig& cfg, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                       const ForwardOutputs<T>& out) {
  switch (cfg.kind) {
    case CellKind::kRnn: run_forward(RnnCell{cfg.activation}, in, saved, out); break;
    case CellKind::kLstm: run_forward(LstmCell{}, in, saved, out); break;
    case CellKind::kGru: run_forward(GruCell{cfg.reset_after}, in, saved, out); break;
  }
}

namespace {
// Measured on one AVX2 core (bench_latency.py --levers): B=1 gains 6-20 %, B=4 loses up to
// 20 % (LSTM, I=H=256: the projection's B*T rows leave the caches before the steps read them).
constexpr int kDefaultProjectInputsBatch = 2;
std::atomic<int> g_project_inputs_batch{kDefaultProjectInputsBatch};
}  // namespace

int project_inputs_batch() { return g_project_inputs_batch.load(std::memory_order_relaxed); }
void set_project_inputs_batch(int n) { g_project_inputs_batch.store(std::clamp(n, 0, kProjectInputsBatch)); }

namespace {
// The cell's forward weights packed as run_forward lays them out, one array per plan, in T or,
// with Out = Bf16, rounded to bfloat16 (bf16_panels).
template <typename Out, typename Cell, typename T>
std::vector<AlignedVector<Out>> pack_cell(const Cell& cell, const SequenceInputs<T>& in, bool one_hot) {
  const int H = in.units, kx = one_hot ? 0 : in.input_size;
  const std::vector<PanelPlan> plans = cell.forward_plans();
  std::vector<AlignedVector<Out>> packed;
  for (size_t i = 0; i < plans.size(); ++i) {
    const int k = i == 0 ? kx + H : H;
    AlignedVector<T> values(static_cast<size_t>(PanelMatrix<T>::values(plans[i], k, H)));
    const PanelMatrix<T> w(plans[i], k, i == 0 ? kx : 0, H, forward_source(in), values.data());
    parallel_region(region_threads(), [&] {
      const Range groups = split_range(w.groups(), omp_get_thread_num(), omp_get_num_threads(), 1);
      w.fill(groups.begin, groups.end);
    });
    if constexpr (std::is_same<Out, T>::value) {
      packed.push_back(std::move(values));
    } else {
      packed.push_back(bf16_panels(plans[i].panels, values, "kernel, recurrent_kernel"));
    }
  }
  return packed;
}

template <typename Out, typename T>
std::vector<AlignedVector<Out>> pack_as(const CellConfig& cfg, const T* kernel, const T* recurrent, int input_size,
                                        int units, bool one_hot) {
  SequenceInputs<T> in;
  in.input_size = input_size;
  in.units = units;
  in.gates = cfg.gates();
  in.kernel = kernel;
  in.recurrent = recurrent;
  switch (cfg.kind) {
    case CellKind::kRnn: return pack_cell<Out>(RnnCell{cfg.activation}, in, one_hot);
    case CellKind::kLstm: return pack_cell<Out>(LstmCell{}, in, one_hot);
    case CellKind::kGru: return pack_cell<Out>(GruCell{cfg.reset_after}, in, one_hot);
  }
  return {};
}
}  // namespace

template <typename T>
std::vector<AlignedVector<T>> pack_forward_weights(const CellConfig& cfg, const T* kernel, const T* recurrent,
                                                 int input_size, int units, bool one_hot) {
  return pack_as<T>(cfg, kernel, recurrent, input_size, units, one_hot);
}

std::vector<AlignedVector<Bf16>> pack_forward_weights_bf16(const CellConfig& cfg, const float* kernel,
                                                         const float* recurrent, int input_size, int units,
                                                         bool one_hot) {
  return pack_as<Bf16>(cfg, kernel, recurrent, input_size, units, one_hot);
}

template <typename T>
void recurrent_backward(const CellConfig& cfg, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                        const IncomingGrads<T>& incoming, const SequenceGrads<T>& grads) {
  switch (cfg.kind) {
    case CellKind::kRnn: run_backward(RnnCell{cfg.activation}, in, saved, incoming, grads); break;
    case CellKind::kLstm: run_backward(LstmCell{}, in, saved, incoming, grads); break;
    case CellKind::kGru: run_backward(GruCell{cfg.reset_after}, in, saved, incoming, grads); break;
  }
}

template <typename T>
void recurrent_weight_grads(const CellConfig& cfg, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                            const T* dgates, const T* drecurrent_gates, const SequenceGrads<T>& grads) {
  switch (cfg.kind) {
    case CellKind::kRnn: run_weight_grads(RnnCell{cfg.activation}, in, saved, dgates, drecurrent_gates, grads); break;
    case CellKind::kLstm: run_weight_grads(LstmCell{}, in, saved, dgates, drecurrent_gates, grads); break;
    case CellKind::kGru:
      run_weight_grads(GruCell{cfg.reset_after}, in, saved, dgates, drecurrent_gates, grads);
      break;
  }
}

template void recurrent_forward<float>(const CellConfig&, const SequenceInputs<float>&,
                                       const SavedSequence<float>&, const ForwardOutputs<float>&);
template void recurrent_forward<double>(const CellConfig&, const SequenceInputs<double>&,
                                        const SavedSequence<double>&, const ForwardOutputs<double>&);
template std::vector<AlignedVector<float>> pack_forward_weights<float>(const CellConfig&, const float*, const float*,
                                                                     int, int, bool);
template std::vector<AlignedVector<double>> pack_forward_weights<double>(const CellConfig&, const double*,
                                                                       const double*, int, int, bool);
template void recurrent_backward<float>(const CellConfig&, const SequenceInputs<float>&,
                                        const SavedSequence<float>&, const IncomingGrads<float>&,
                                        const SequenceGrads<float>&);
template void recurrent_backward<double>(const CellConfig&, const SequenceInputs<double>&,
                                         const SavedSequence<double>&, const IncomingGrads<double>&,
                                         const SequenceGrads<double>&);
template void recurrent_weight_grads<float>(const CellConfig&, const SequenceInputs<float>&,
                                            const SavedSequence<float>&, const float*, const float*,
                                            const SequenceGrads<float>&);
template void recurrent_weight_grads<double>(const CellConfig&, const SequenceInputs<double>&,
                                             const SavedSequence<double>&, const double*, const double*,
                                             const SequenceGrads<double>&);

}  // namespace cpu
}  // namespace fusedrnn
