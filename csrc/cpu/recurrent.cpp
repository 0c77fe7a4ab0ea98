#include "cpu/recurrent.h"

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

template <typename T>
void recurrent_backward(const CellConfig& cfg, const SequenceInputs<T>& in, const SavedSequence<T>& saved,
                        const IncomingGrads<T>& incoming, const SequenceGrads<T>& grads) {
  switch (cfg.kind) {
    case CellKind::kRnn: run_backward(RnnCell{cfg.activation}, in, saved, incoming, grads); break;
    case CellKind::kLstm: run_backward(LstmCell{}, in, saved, incoming, grads); break;
    case CellKind::kGru: run_backward(GruCell{cfg.reset_after}, in, saved, incoming, grads); break;
  }
}

template void recurrent_forward<float>(const CellConfig&, const SequenceInputs<float>&,
                                       const SavedSequence<float>&, const ForwardOutputs<float>&);
template void recurrent_forward<double>(const CellConfig&, const SequenceInputs<double>&,
                                        const SavedSequence<double>&, const ForwardOutputs<double>&);
template void recurrent_backward<float>(const CellConfig&, const SequenceInputs<float>&,
                                        const SavedSequence<float>&, const IncomingGrads<float>&,
                                        const SequenceGrads<float>&);
template void recurrent_backward<double>(const CellConfig&, const SequenceInputs<double>&,
                                         const SavedSequence<double>&, const IncomingGrads<double>&,
                                         const SequenceGrads<double>&);

}  // namespace cpu
}  // namespace fusedrnn
