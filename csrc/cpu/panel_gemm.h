// The GEMM of one recurrent step, C[rows, cols] = A[rows, K] * W[K, cols], with W packed so
// that one tile of C holds everything the gate math of a few hidden units needs.
//
// W is packed once per call (in memory the caller provides) into groups of up to kPanels
// panels of kLanes columns (one vector each): for LSTM, group u holds the i, f, c and o
// columns of units [u*L, u*L + L); for SimpleRNN four consecutive blocks of L units. A tile is
// tile_rows() rows by one group, summed in registers over all of K and handed to a callback
// while it is in L1 (the cells apply their gate math there). Where the layout leaves a panel
// without a source in part of K (GRU reset_before: the candidate's recurrent term comes later),
// the kernel skips it rather than multiplying zeros. The GRU with reset_after needs its
// candidate's input and recurrent terms apart: its candidate panel is one panel in the packed
// weights whose sums over the two segments of K go to two slots of the tile (`split_last`).
// Single-step calls use W unpacked (BLAS products, tiles assembled from them): packing would
// cost more than it saves. The backward's products over all steps use the same kernel: dx
// against the packed transposed kernel, and the weight gradients X^T dG, whose left factor
// is stored by columns (multiply_by_columns).
//
// K has two segments, [0, kx) and [kx, K): the step's input x and its state h. The left
// operand's two segments may lie apart, each with its own row stride (Operands: a step without
// dropout reads x_t and h_{t-1} where they are). Each panel has its own left operand when
// dropout gives every gate its own mask; otherwise all panels share one.
//
// Vectors are GCC/Clang vector extensions of kVectorBytes, so one source serves float and
// double, AVX-512 (one zmm per vector), AVX2 and SSE builds.
//
// For inference, float weights may also be kept in bfloat16 (opt-in, bfloat16.h), widened to
// float as the tile kernel loads them, so a product bound by how fast the weights stream reads
// half the bytes. Sums stay in float. The layout is the float one with each row's panels taken
// in pairs (bf16_panels), so that one load and two integer operations widen two panels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/aligned_vector.h"
#include "cpu/bfloat16.h"
#include "cpu/blas.h"

namespace fusedrnn {
namespace cpu {

// Accumulators per tile: rows x panels of them, plus the panel vectors, fit the register file.
// With AVX2's 16 registers a tile of 3 or 4 panels and more than 2 rows is summed in passes over
// pairs of panels (kPairRows rows x 2 panels: 12 accumulators, 2 panel vectors and a broadcast),
// then a last odd panel alone, so that each panel vector loaded serves 6 rows instead of 2.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kTileVectors = 24;  // + 4 panel vectors: 28 of the 32 zmm registers
constexpr int kPairRows = 0;      // no pair passes
#else
constexpr int kVectorBytes = 32;
constexpr int kTileVectors = 8;   // + 4 panel vectors + a broadcast: within the 16 ymm registers
constexpr int kPairRows = 6;
#endif
constexpr int kPanels = 4;        // most panels (vectors) per group

// Rows per tile for groups of `panels` panels (6 or 8 with AVX-512; 6 for 3 or 4 panels with AVX2).
constexpr int tile_rows(int panels) {
  return panels >= 3 && kPairRows > kTileVectors / panels ? kPairRows : kTileVectors / panels;
}
// Vectors of the largest tile: 3 panels and a split slot, or 4 panels.
constexpr int kTileBufferVectors = tile_rows(3) * 4 > tile_rows(4) * 4 ? tile_rows(3) * 4 : tile_rows(4) * 4;
static_assert(kTileBufferVectors >= tile_rows(4) * 4, "a tile buffer holds every tile shape");

// K is walked in blocks whose panels (K-block x group) stay in L1 while every row tile of a
// chunk of up to kChunkTiles tiles uses them.
constexpr int kBlockBytes = 32 * 1024;
constexpr int kChunkTiles = 8;

template <typename T>
constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(T));

// How the panels of a group map to the gates and units of the recurrent cell: panel p takes its
// input-segment rows from gate x_gate[p] (-1: none) and its state-segment rows from gate
// h_gate[p], at units [unit_block[p] * L, unit_block[p] * L + L) of the group. `kind` names the
// compile-time variant of the tile kernel that matches which panels each segment feeds.
enum class PanelKind : int {
  kAll = 0,        // every panel in both segments (LSTM, SimpleRNN, products over one segment)
  kGruAfter = 1,   // z, r, h: both segments feed all three; h's two sums go to slots 2 and 3
  kGruBefore = 2,  // z, r, x_h: x feeds all three, h only z and r
};

struct PanelPlan {
  PanelKind kind;
  int panels;
  int x_gate[kPanels];
  int h_gate[kPanels];
  int unit_block[kPanels];
  // The last panel's sums over the x and h segments go to two tile slots (panels - 1 and panels).
  bool split_last = false;

  int blocks() const { return *std::max_element(unit_block, unit_block + panels) + 1; }
  int slots() const { return panels + (split_last ? 1 : 0); }  // vectors per row of a tile
  // The tile's slots as panels of their own: the split panel becomes its x part and its h part.
  PanelPlan slot_plan() const {
    if (!split_last) return *this;
    PanelPlan out = *this;
    const int last = panels - 1;
    out.panels = panels + 1;
    out.split_last = false;
    out.x_gate[panels] = -1;
    out.h_gate[panels] = h_gate[last];
    out.unit_block[panels] = unit_block[last];
    out.h_gate[last] = -1;
    return out;
  }
};

// The left factor A of a product, in the two segments of K of the packed matrix: columns
// [0, kx) (the step's input) are x[p][r * ldx + k], columns [kx, K) (the state) are
// h[p][r * ldh + k - kx]. One pointer per panel when per_panel (a dropout mask per gate), else
// x[0] and h[0] serve every panel. A contiguous matrix [x | h] is both, with h = x + kx; a step
// without dropout reads its input and state rows where they are, each with its own stride.
template <typename T>
struct Operands {
  const T* x[kPanels];
  const T* h[kPanels];
  int ldx, ldh;
  bool per_panel;

  // a[p] (a[0] unless per_panel; all kPanels entries, null where a plan has fewer panels):
  // rows of K values, [x | h] with the state from column kx.
  static Operands contiguous(const T* const* a, int lda, bool per_panel, int kx) {
    Operands o{{}, {}, lda, lda, per_panel};
    for (int p = 0; p < (per_panel ? kPanels : 1); ++p) {
      o.x[p] = a[p];
      o.h[p] = a[p] == nullptr ? nullptr : a[p] + kx;
    }
    return o;
  }
  // The same operands from row r on.
  Operands from_row(int r) const {
    Operands o = *this;
    for (int p = 0; p < (per_panel ? kPanels : 1); ++p) {
      o.x[p] = x[p] == nullptr ? nullptr : x[p] + static_cast<long>(r) * ldx;
      o.h[p] = h[p] == nullptr ? nullptr : h[p] + static_cast<long>(r) * ldh;
    }
    return o;
  }
};

// Four consecutive unit blocks of one gate: SimpleRNN, and products whose columns are units.
inline PanelPlan units_plan(int x_gate, int h_gate) {
  return {PanelKind::kAll, 4, {x_gate, x_gate, x_gate, x_gate}, {h_gate, h_gate, h_gate, h_gate}, {0, 1, 2, 3}};
}

// Where the K x (gates x units) matrix comes from: element k of column (gate, unit) is
// base[k' * k_stride + (gate * gate_stride + unit) * unit_stride], with base = x and k' = k in
// the input segment (k < kx), base = h and k' = k - kx after. One of k_stride and unit_stride
// is 1 (a row-major matrix or a transposed one).
template <typename T>
struct PanelSource {
  const T* x;
  const T* h;
  long k_stride, gate_stride, unit_stride;

  const T* column(int k, int kx, int gate) const {
    return k < kx ? x + k * k_stride + gate * gate_stride * unit_stride
                  : h + (k - kx) * k_stride + gate * gate_stride * unit_stride;
  }
};

template <typename T>
class PanelMatrix {
 public:
  static constexpr int L = kLanes<T>;

  PanelMatrix() = default;
  // A K x `units` matrix from `source`, packed into `storage` (values(plan, k, units) elements,
  // filled by fill()), or used in place when storage is null: products are then BLAS calls on
  // the source (for single-step calls, where packing would cost more than it saves).
  PanelMatrix(const PanelPlan& plan, int k, int kx, int units, const PanelSource<T>& source, T* storage)
      : plan_(plan), k_(k), kx_(kx), units_(units), source_(source), data_(storage) {}

  static long values(const PanelPlan& plan, int k, int units) {
    const int width = plan.blocks() * L;
    return static_cast<long>((units + width - 1) / width) * k * plan.panels * L;
  }

  // The same matrix packed before, in bfloat16 (bf16_panels of a packed float copy): products
  // widen its values to T as they load them. Never filled (fill() does nothing); float only.
  static PanelMatrix packed_bf16(const PanelPlan& plan, int k, int kx, int units, const Bf16* storage) {
    static_assert(std::is_same<T, float>::value, "bfloat16 weights are widened to float");
    PanelMatrix w(plan, k, kx, units, PanelSource<T>{}, nullptr);
    w.bf16_ = storage;
    return w;
  }

  const PanelPlan& plan() const { return plan_; }
  int group_units() const { return plan_.blocks() * L; }
  int groups() const { return (units_ + group_units() - 1) / group_units(); }
  int kx() const { return kx_; }
  bool packed() const { return data_ != nullptr || bf16_ != nullptr; }
  bool bf16() const { return bf16_ != nullptr; }
  // Bytes of the packed values (of either precision).
  long bytes() const { return values(plan_, k_, units_) * static_cast<long>(bf16() ? sizeof(Bf16) : sizeof(T)); }

  // Packs groups [g_begin, g_end) (zero where a panel has no gate or passes the last unit).
  // Threads may fill disjoint groups at the same time. A row-major source is read row by row
  // (row k of every group, then row k + 1), a transposed one group by group (its units' rows of
  // the source, each read along k): either way the reads run along the source's memory. (For
  // the 21 MB of row-major LSTM weights at the translation shape, reading them row by row
  // instead of group by group halved the packing time.)
  void fill(int g_begin, int g_end) const {
    if (bf16()) return;  // packed before
    if (source_.unit_stride == 1) {
      for (int kk = 0; kk < k_; ++kk)
        for (int g = g_begin; g < g_end; ++g) fill_row(g, kk);
    } else {
      for (int g = g_begin; g < g_end; ++g)
        for (int kk = 0; kk < k_; ++kk) fill_row(g, kk);
    }
  }

  // For rows [0, m) of the left operands a[p] (leading dimension lda; a[0] for every panel
  // unless per_panel; one per slot of plan().slot_plan()) and the K rows [k0, k1): calls
  // consume(r, u_begin, u_end, tile_row) for each row r and each group of units overlapping
  // [unit_begin, unit_end) (a multiple of group_units() apart), where tile_row[s * L + l] is
  // column (slot s, lane l) of the group.
  template <typename Consume>
  void multiply(int m, const T* const* a, int lda, bool per_panel, int k0, int k1, int unit_begin, int unit_end,
                Consume&& consume) const {
    const Operands<T> operands = Operands<T>::contiguous(a, lda, per_panel, kx_);
    if (packed()) multiply_packed<false>(m, operands, k0, k1, unit_begin, unit_end, consume);
    else multiply_direct(m, a, lda, per_panel, k0, k1, unit_begin, unit_end, consume);
  }

  // The same with the left factor in two segments (Operands); packed matrices only.
  template <typename Consume>
  void multiply(int m, const Operands<T>& a, int k0, int k1, int unit_begin, int unit_end, Consume&& consume) const {
    multiply_packed<false>(m, a, k0, k1, unit_begin, unit_end, consume);
  }

  // The same with the left operand stored by columns: A[r][k] = a[k * lda + r] (a product
  // whose left factor is a transposed row-major matrix, such as a weight gradient X^T dG).
  // Packed float matrices only (not bfloat16); every panel shares `a`.
  template <typename Consume>
  void multiply_by_columns(int m, const T* a, int lda, int k0, int k1, int unit_begin, int unit_end,
                           Consume&& consume) const {
    multiply_packed<true>(m, Operands<T>::contiguous(&a, lda, false, 0), k0, k1, unit_begin, unit_end, consume);
  }

 private:
  long group_offset(int g) const { return static_cast<long>(g) * k_ * plan_.panels * L; }
  T* group(int g) const { return data_ + group_offset(g); }

  // Row kk of group g: its panels' L values each.
  void fill_row(int g, int kk) const {
    const int P = plan_.panels;
    const long us = source_.unit_stride;
    for (int p = 0; p < P; ++p) {
      T* d = group(g) + (static_cast<long>(kk) * P + p) * L;
      const int gate = kk < kx_ ? plan_.x_gate[p] : plan_.h_gate[p];
      const int u0 = g * group_units() + plan_.unit_block[p] * L;
      const int n = gate < 0 ? 0 : std::max(0, std::min(L, units_ - u0));
      const T* src = n > 0 ? source_.column(kk, kx_, gate) + u0 * us : nullptr;
      if (us == 1 && n == L) std::memcpy(d, src, sizeof(T) * L);  // a fixed-size copy, inlined
      else if (us == 1) std::copy(src, src + n, d);
      else
        for (int l = 0; l < n; ++l) d[l] = src[l * us];
      std::fill(d + n, d + L, T(0));
    }
  }

  template <bool kByColumns, typename Consume>
  void multiply_packed(int m, const Operands<T>& a, int k0, int k1, int unit_begin, int unit_end,
                       Consume&& consume) const;
  template <typename Consume>
  void multiply_direct(int m, const T* const* a, int lda, bool per_panel, int k0, int k1, int unit_begin,
                       int unit_end, Consume&& consume) const;

  PanelPlan plan_{};
  int k_ = 0, kx_ = 0, units_ = 0;
  PanelSource<T> source_{};
  T* data_ = nullptr;
  const Bf16* bf16_ = nullptr;
};

// The packed float values of a matrix of `panels` panels in bfloat16, for
// PanelMatrix::packed_bf16: in each K row, panels 2q and 2q + 1 interleaved (value 2l of the
// pair is lane l of panel 2q, value 2l + 1 lane l of panel 2q + 1), a last odd panel as it is.
// Rounded to nearest even; std::domain_error naming `weights` when a value rounds to infinity
// (beyond bfloat16's range).
AlignedVector<Bf16> bf16_panels(int panels, const AlignedVector<float>& packed, const char* weights);

// The tile kernel, implemented in panel_gemm.cpp for float and double: tile[R][slots * L]
// (+)= sum over k in [k0, k1) of A[r][k] * W[k][panel] (A: the operands' rows [0, R)), panels
// chosen per segment by `kind` (kGruAfter: the candidate panel's x-segment sum to slot 2, its
// h-segment sum to slot 3); with `accumulate` the sum adds to the tile's values, otherwise it
// replaces them.
template <typename T>
void panel_tile(PanelKind kind, int rows, const Operands<T>& a, const T* w, int k0, int kx, int k1, bool accumulate,
                T* tile);
// The same with the panels in bfloat16 (float only).
void panel_tile(PanelKind kind, int rows, const Operands<float>& a, const Bf16* w, int k0, int kx, int k1,
                bool accumulate, float* tile);
// The kAll tile with A stored by columns (A[r][k] = a[k * lda + r]) and one segment.
template <typename T>
void panel_tile_by_columns(int rows, const T* a, int lda, const T* w, int k0, int k1, bool accumulate, T* tile);

template <typename T>
template <bool kByColumns, typename Consume>
void PanelMatrix<T>::multiply_packed(int m, const Operands<T>& a, int k0, int k1, int unit_begin, int unit_end,
                                     Consume&& consume) const {
  const int width = group_units(), P = plan_.panels, S = plan_.slots();
  const int value_bytes = static_cast<int>(bf16() ? sizeof(Bf16) : sizeof(T));
  const int kc = std::max(16, kBlockBytes / (P * L * value_bytes));
  // Rows in tiles of equal height (16 rows: 6 + 5 + 5, not 6 + 6 + 4).
  const int tiles = (m + tile_rows(P) - 1) / tile_rows(P);
  alignas(64) T tile[kChunkTiles][kTileBufferVectors * kLanes<T>];
  int first_row[kChunkTiles + 1];
  for (int u = unit_begin; u < unit_end; u += width) {
    const T* w = bf16() ? nullptr : group(u / width);
    const int u_end = std::min(u + width, unit_end);
    for (int t0 = 0, r0 = 0; t0 < tiles; t0 += kChunkTiles) {
      const int chunk = std::min(kChunkTiles, tiles - t0);
      first_row[0] = r0;
      for (int i = 0; i < chunk; ++i) first_row[i + 1] = first_row[i] + (m - first_row[i]) / (tiles - t0 - i);
      for (int kb = k0; kb < k1; kb += kc) {
        for (int i = 0; i < chunk; ++i) {
          const int rows = first_row[i + 1] - first_row[i], kb_end = std::min(kb + kc, k1);
          if constexpr (kByColumns) {
            panel_tile_by_columns(rows, a.x[0] + first_row[i], a.ldx, w, kb, kb_end, kb > k0, tile[i]);
          } else if (bf16()) {
            if constexpr (std::is_same<T, float>::value)
              panel_tile(plan_.kind, rows, a.from_row(first_row[i]), bf16_ + group_offset(u / width), kb, kx_, kb_end,
                         kb > k0, tile[i]);
          } else {
            panel_tile(plan_.kind, rows, a.from_row(first_row[i]), w, kb, kx_, kb_end, kb > k0, tile[i]);
          }
        }
      }
      for (int i = 0; i < chunk; ++i)
        for (int r = first_row[i]; r < first_row[i + 1]; ++r) consume(r, u, u_end, tile[i] + (r - first_row[i]) * S * L);
      r0 = first_row[chunk];
    }
  }
}

// The same product without packing: for each distinct (x gate, h gate) of the tile's slots, one
// or two BLAS GEMMs over the units [unit_begin, unit_end), then tile rows assembled from them.
template <typename T>
template <typename Consume>
void PanelMatrix<T>::multiply_direct(int m, const T* const* a, int lda, bool per_panel, int k0, int k1,
                                     int unit_begin, int unit_end, Consume&& consume) const {
  const PanelPlan plan = plan_.slot_plan();
  const int P = plan.panels, n = unit_end - unit_begin, width = group_units();
  if (m <= 0 || n <= 0) return;
  int product_of[kPanels];
  std::vector<T> products;  // one (m, n) block per distinct (x gate, h gate) pair
  for (int p = 0; p < P; ++p) {
    product_of[p] = -1;
    for (int q = 0; q < p && product_of[p] < 0; ++q)
      if (plan.x_gate[q] == plan.x_gate[p] && plan.h_gate[q] == plan.h_gate[p]) product_of[p] = product_of[q];
    if (product_of[p] >= 0) continue;
    product_of[p] = static_cast<int>(products.size() / (static_cast<size_t>(m) * n));
    products.resize(products.size() + static_cast<size_t>(m) * n);
    T* c = products.data() + static_cast<long>(product_of[p]) * m * n;
    const T* ap = a[per_panel ? p : 0];
    T beta = T(0);
    const int segments[2][2] = {{k0, std::min(k1, kx_)}, {std::max(k0, kx_), k1}};
    for (int seg = 0; seg < 2; ++seg) {
      const int gate = seg == 0 ? plan.x_gate[p] : plan.h_gate[p];
      const int kb = segments[seg][0], ke = segments[seg][1];
      if (gate < 0 || ke <= kb) continue;
      const T* b = source_.column(kb, kx_, gate) + unit_begin * source_.unit_stride;
      // The source is K x units (unit stride 1) or stored transposed, units x K (K stride 1).
      // With one unit or one K row both strides can be 1; BLAS then reads a single row or
      // column, whose leading dimension only has to be legal.
      const bool trans = !(source_.unit_stride == 1 && (source_.k_stride >= n || ke - kb == 1));
      const long ld = trans ? std::max<long>(source_.unit_stride, ke - kb) : std::max<long>(source_.k_stride, n);
      gemm(false, trans, m, n, ke - kb, T(1), ap + kb, lda, b, static_cast<int>(ld), beta, c, n);
      beta = T(1);
    }
    if (beta == T(0)) std::fill(c, c + static_cast<long>(m) * n, T(0));
  }
  alignas(64) T tile[kPanels * kLanes<T>];
  for (int u = unit_begin; u < unit_end; u += width) {
    const int u_end = std::min(u + width, unit_end);
    for (int r = 0; r < m; ++r) {
      for (int p = 0; p < P; ++p) {
        const int u0 = u + plan.unit_block[p] * L, count = std::max(0, std::min(L, u_end - u0));
        const T* c = products.data() + (static_cast<long>(product_of[p]) * m + r) * n + (u0 - unit_begin);
        std::copy(c, c + count, tile + p * L);
        std::fill(tile + p * L + count, tile + (p + 1) * L, T(0));
      }
      consume(r, u, u_end, tile);
    }
  }
}

}  // namespace cpu
}  // namespace fusedrnn
