#include "cpu/panel_gemm.h"

#include <type_traits>

// Builds without AVX warn that passing 32/64-byte vectors by value changes the ABI; every such
// function here is internal and inlined, so no ABI is crossed.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace fusedrnn {
namespace cpu {

namespace {

// (The attribute needs a concrete type: an alias template over T would silently drop it.)
template <typename T>
struct VectorOf {
  typedef T type __attribute__((vector_size(kVectorBytes)));
};
template <typename T>
using Vec = typename VectorOf<T>::type;

template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

// acc[r][p] += A[r][k] * W[k][p] over k in [k_begin, k_end) for the panels in `mask`; A[r][k] is
// a[r * lda + k - k_first] (a's columns start at K row k_first), or a[k * lda + r] when
// kByColumns (A stored transposed).
template <typename T, int R, int P, unsigned kMask, bool kPerPanel, bool kByColumns>
inline __attribute__((always_inline)) void accumulate_products(Vec<T> (&acc)[R][P], const T* const* a, int lda,
                                                      int k_first, const T* w, int k_begin, int k_end) {
  constexpr int L = kLanes<T>;
  for (int k = k_begin; k < k_end; ++k) {
    Vec<T> b[P];
    const T* wk = w + static_cast<long>(k) * P * L;
    const int ka = k - k_first;
    for (int p = 0; p < P; ++p)
      if (kMask & (1u << p)) b[p] = load(wk + p * L);
    for (int r = 0; r < R; ++r) {
      if constexpr (kPerPanel) {
        for (int p = 0; p < P; ++p)
          if (kMask & (1u << p)) acc[r][p] += a[p][static_cast<long>(r) * lda + ka] * b[p];
      } else {
        const T av = kByColumns ? a[0][static_cast<long>(k) * lda + r] : a[0][static_cast<long>(r) * lda + ka];
        for (int p = 0; p < P; ++p)
          if (kMask & (1u << p)) acc[r][p] += av * b[p];
      }
    }
  }
}

// With kSplitLast the tile has P + 1 slots per row: the last panel accumulates its x-segment
// sum in slot P - 1 and its h-segment sum in slot P (the K blocks cross kx once, in order).
template <typename T, int R, int P, unsigned kXMask, unsigned kHMask, bool kPerPanel, bool kSplitLast,
          bool kByColumns>
void tile_kernel(const Operands<T>& a, const T* w, int k0, int kx, int k1, bool accumulate, T* tile) {
  constexpr int L = kLanes<T>, S = P + (kSplitLast ? 1 : 0), last = P - 1;
  // Slot of panel p while the block is in the x segment (before kx) or after it.
  auto slot = [](int p, bool in_h) { return kSplitLast && p == last && in_h ? P : p; };
  // The h sum of the split panel starts at the block that holds row kx.
  const bool fresh_h = kSplitLast && k0 == kx;
  Vec<T> acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p)
      acc[r][p] = accumulate && !(fresh_h && p == last) ? load(tile + (r * S + slot(p, k0 >= kx)) * L) : Vec<T>{};
  const int split = std::min(std::max(kx, k0), k1);
  accumulate_products<T, R, P, kXMask, kPerPanel, kByColumns>(acc, a.x, a.ldx, 0, w, k0, split);
  if (kSplitLast && (split > k0 || !accumulate) && split < k1) {
    // Entering the h segment: the x sum is final (zero when there was none), the h sum starts.
    for (int r = 0; r < R; ++r) {
      store(tile + (r * S + last) * L, acc[r][last]);
      acc[r][last] = Vec<T>{};
    }
  }
  accumulate_products<T, R, P, kHMask, kPerPanel, kByColumns>(acc, a.h, a.ldh, kx, w, split, k1);
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) store(tile + (r * S + slot(p, k1 > kx)) * L, acc[r][p]);
}

// acc[r][q] += A[r][k] * W[k][p0 + q] (q = 0, 1) over k in [k_begin, k_end) of a 4-panel
// group; A as in accumulate_products.
template <typename T, int R, bool kPerPanel, bool kByColumns>
inline __attribute__((always_inline)) void accumulate_pair(Vec<T> (&acc)[R][2], const T* const* a, int lda,
                                                           int k_first, const T* w, int p0, int k_begin, int k_end) {
  constexpr int L = kLanes<T>;
  for (int k = k_begin; k < k_end; ++k) {
    const T* wk = w + (static_cast<long>(k) * 4 + p0) * L;
    const Vec<T> b0 = load(wk), b1 = load(wk + L);
    const int ka = k - k_first;
    for (int r = 0; r < R; ++r) {
      if constexpr (kPerPanel) {
        acc[r][0] += a[p0][static_cast<long>(r) * lda + ka] * b0;
        acc[r][1] += a[p0 + 1][static_cast<long>(r) * lda + ka] * b1;
      } else {
        const T av = kByColumns ? a[0][static_cast<long>(k) * lda + r] : a[0][static_cast<long>(r) * lda + ka];
        acc[r][0] += av * b0;
        acc[r][1] += av * b1;
      }
    }
  }
}

// The 4-panel tile (every panel in both segments) of R rows in two passes over pairs of
// panels: the same sums, in the same order, as tile_kernel's, with fewer registers per row.
template <typename T, int R, bool kPerPanel, bool kByColumns>
void pair_tile_kernel(const Operands<T>& a, const T* w, int k0, int kx, int k1, bool accumulate, T* tile) {
  constexpr int L = kLanes<T>, P = 4;
  const int split = std::min(std::max(kx, k0), k1);
  for (int p0 = 0; p0 < P; p0 += 2) {
    Vec<T> acc[R][2];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 2; ++q) acc[r][q] = accumulate ? load(tile + (r * P + p0 + q) * L) : Vec<T>{};
    accumulate_pair<T, R, kPerPanel, kByColumns>(acc, a.x, a.ldx, 0, w, p0, k0, split);
    accumulate_pair<T, R, kPerPanel, kByColumns>(acc, a.h, a.ldh, kx, w, p0, split, k1);
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 2; ++q) store(tile + (r * P + p0 + q) * L, acc[r][q]);
  }
}

template <typename T, int P, unsigned kXMask, unsigned kHMask, bool kPerPanel, bool kSplitLast, bool kByColumns = false>
void tile_rows(int rows, const Operands<T>& a, const T* w, int k0, int kx, int k1, bool accumulate, T* tile) {
  const auto kernel = [&](auto r) {
    constexpr int R = decltype(r)::value;
    tile_kernel<T, R, P, kXMask, kHMask, kPerPanel, kSplitLast, kByColumns>(a, w, k0, kx, k1, accumulate, tile);
  };
  if constexpr (kPairRows > 0 && P == 4 && kXMask == 0xFu && kHMask == 0xFu && !kSplitLast) {
    const auto pairs = [&](auto r) {
      pair_tile_kernel<T, decltype(r)::value, kPerPanel, kByColumns>(a, w, k0, kx, k1, accumulate, tile);
    };
    switch (rows) {
      case 6: return pairs(std::integral_constant<int, 6>{});
      case 5: return pairs(std::integral_constant<int, 5>{});
      case 4: return pairs(std::integral_constant<int, 4>{});
      case 3: return pairs(std::integral_constant<int, 3>{});
      default: break;  // 1 or 2 rows: the one-pass tile
    }
  }
  switch (rows) {
#if defined(__AVX512F__)
    case 8: return kernel(std::integral_constant<int, 8>{});
    case 7: return kernel(std::integral_constant<int, 7>{});
    case 6: return kernel(std::integral_constant<int, 6>{});
    case 5: return kernel(std::integral_constant<int, 5>{});
    case 4: return kernel(std::integral_constant<int, 4>{});
    case 3: return kernel(std::integral_constant<int, 3>{});
#endif
    case 2: return kernel(std::integral_constant<int, 2>{});
    default: return kernel(std::integral_constant<int, 1>{});
  }
}

template <typename T, int P, unsigned kXMask, unsigned kHMask, bool kSplitLast = false>
void tile_any(int rows, const Operands<T>& a, const T* w, int k0, int kx, int k1, bool accumulate, T* tile) {
  if (a.per_panel) tile_rows<T, P, kXMask, kHMask, true, kSplitLast>(rows, a, w, k0, kx, k1, accumulate, tile);
  else tile_rows<T, P, kXMask, kHMask, false, kSplitLast>(rows, a, w, k0, kx, k1, accumulate, tile);
}

}  // namespace

template <typename T>
void panel_tile(PanelKind kind, int rows, const Operands<T>& a, const T* w, int k0, int kx, int k1, bool accumulate,
                T* tile) {
  switch (kind) {
    case PanelKind::kAll: return tile_any<T, 4, 0xFu, 0xFu>(rows, a, w, k0, kx, k1, accumulate, tile);
    case PanelKind::kGruAfter: return tile_any<T, 3, 0x7u, 0x7u, true>(rows, a, w, k0, kx, k1, accumulate, tile);
    case PanelKind::kGruBefore: return tile_any<T, 3, 0x7u, 0x3u>(rows, a, w, k0, kx, k1, accumulate, tile);
  }
}

template <typename T>
void panel_tile_by_columns(int rows, const T* a, int lda, const T* w, int k0, int k1, bool accumulate, T* tile) {
  const Operands<T> columns = Operands<T>::contiguous(&a, lda, false, 0);  // one segment: K ends at kx = k1
  tile_rows<T, 4, 0xFu, 0xFu, false, false, true>(rows, columns, w, k0, k1, k1, accumulate, tile);
}

template void panel_tile<float>(PanelKind, int, const Operands<float>&, const float*, int, int, int, bool, float*);
template void panel_tile<double>(PanelKind, int, const Operands<double>&, const double*, int, int, int, bool,
                                 double*);
template void panel_tile_by_columns<float>(int, const float*, int, const float*, int, int, bool, float*);
template void panel_tile_by_columns<double>(int, const double*, int, const double*, int, int, bool, double*);

}  // namespace cpu
}  // namespace fusedrnn
