#include "cpu/packed_dense.h"

#include <type_traits>

#include "cpu/panel_gemm.h"
#include "cpu/parallel.h"

namespace fusedrnn {
namespace cpu {

namespace {
// The kernel as a K = in by `units` panel matrix: one segment (kx = in), the units in groups of
// four blocks of L (units_plan), read row by row from the row-major kernel when packing.
template <typename T>
PanelMatrix<T> dense_matrix(int in, int units, const T* kernel, T* storage) {
  return PanelMatrix<T>(units_plan(0, 0), in, in, units, PanelSource<T>{kernel, kernel, units, 0, 1}, storage);
}
}  // namespace

template <typename T>
AlignedVector<T> pack_dense(int in, int units, const T* kernel) {
  AlignedVector<T> values(static_cast<size_t>(PanelMatrix<T>::values(units_plan(0, 0), in, units)));
  const PanelMatrix<T> w = dense_matrix(in, units, kernel, values.data());
  parallel_region(region_threads(), [&] {
    const Range groups = split_range(w.groups(), omp_get_thread_num(), omp_get_num_threads(), 1);
    w.fill(groups.begin, groups.end);
  });
  return values;
}

AlignedVector<Bf16> pack_dense_bf16(int in, int units, const float* kernel) {
  return bf16_panels(units_plan(0, 0).panels, pack_dense(in, units, kernel), "kernel");
}

template <typename T>
void packed_dense_forward(int n, int in, int units, const T* x, const T* packed, const Bf16* packed_bf16,
                          const T* bias, T* y) {
  PanelMatrix<T> w = dense_matrix<T>(in, units, nullptr, const_cast<T*>(packed));
  if constexpr (std::is_same<T, float>::value)
    if (packed_bf16 != nullptr) w = PanelMatrix<T>::packed_bf16(units_plan(0, 0), in, in, units, packed_bf16);
  // The threads split the units (whole groups), each streaming its part of the kernel once for
  // all the rows.
  parallel_region(region_threads(), [&] {
    const Range mine = split_range(units, omp_get_thread_num(), omp_get_num_threads(), w.group_units());
    if (mine.begin < mine.end)
      w.multiply(n, &x, in, false, 0, in, mine.begin, mine.end, [&](int r, int u0, int u1, const T* tile) {
        T* row = y + static_cast<long>(r) * units;
        // Slot p, lane l of the group's tile is unit u0 + p * L + l (units_plan): tile[j - u0].
        for (int j = u0; j < u1; ++j) row[j] = tile[j - u0] + (bias != nullptr ? bias[j] : T(0));
      });
  });
}

template AlignedVector<float> pack_dense<float>(int, int, const float*);
template AlignedVector<double> pack_dense<double>(int, int, const double*);
template void packed_dense_forward<float>(int, int, int, const float*, const float*, const Bf16*, const float*,
                                          float*);
template void packed_dense_forward<double>(int, int, int, const double*, const double*, const Bf16*,
                                           const double*, double*);

}  // namespace cpu
}  // namespace fusedrnn
