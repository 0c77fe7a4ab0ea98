#include "cpu/panel_gemm.h"

#include <stdexcept>
#include <string>
#include <type_traits>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

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

// One vector of panel values as T: loaded as they are, or widened from bfloat16 (the 16 bits
// become the upper half of a float's 32): a panel without a partner (bf16_panels).
template <typename T, typename W>
inline Vec<T> load_panel(const W* p) {
  if constexpr (std::is_same<W, T>::value) {
    return load(p);
  } else {
    static_assert(std::is_same<T, float>::value && std::is_same<W, Bf16>::value, "bfloat16 panels widen to float");
#if defined(__AVX512F__)
    const __m512i bits = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16);
#elif defined(__AVX2__)
    const __m256i bits = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16);
#else
    // (GCC lowers this conversion to two half-width ones and an insert: the intrinsics above
    // are one instruction each.)
    typedef uint16_t Half __attribute__((vector_size(kVectorBytes / 2)));
    typedef uint32_t Wide __attribute__((vector_size(kVectorBytes)));
    Half h;
    std::memcpy(&h, p, sizeof(h));
    const Wide bits = __builtin_convertvector(h, Wide) << 16;
#endif
    Vec<T> v;
    std::memcpy(&v, &bits, sizeof(v));
    return v;
  }
}

// Panels p and p + 1 of a row of W, from p's first value: two vectors, or in bfloat16 one
// vector of pairs (bf16_panels) whose low halves hold panel p and whose high halves hold panel
// p + 1, each widened by one shift or one mask.
template <typename T, typename W>
inline void load_pair(const W* p, Vec<T>& first, Vec<T>& second) {
  if constexpr (std::is_same<W, T>::value) {
    first = load(p);
    second = load(p + kLanes<T>);
  } else {
    typedef uint32_t Wide __attribute__((vector_size(kVectorBytes)));
    Wide pairs;
    std::memcpy(&pairs, p, sizeof(pairs));
    const Wide low = pairs << 16, high = pairs & 0xFFFF0000u;
    std::memcpy(&first, &low, sizeof(first));
    std::memcpy(&second, &high, sizeof(second));
  }
}

// Whether kMask takes both panels of every pair or neither (bfloat16 panels load by pairs).
constexpr bool whole_pairs(unsigned mask, int panels) {
  for (int p = 0; p + 1 < panels; p += 2)
    if (((mask >> p) & 1u) != ((mask >> (p + 1)) & 1u)) return false;
  return true;
}

// acc[r][p] += A[r][k] * W[k][p] over k in [k_begin, k_end) for the panels in `mask`; A[r][k] is
// a[r * lda + k - k_first] (a's columns start at K row k_first), or a[k * lda + r] when
// kByColumns (A stored transposed).
template <typename T, typename W, int R, int P, unsigned kMask, bool kPerPanel, bool kByColumns>
inline __attribute__((always_inline)) void accumulate_products(Vec<T> (&acc)[R][P], const T* const* a, int lda,
                                                      int k_first, const W* w, int k_begin, int k_end) {
  constexpr int L = kLanes<T>;
  static_assert(whole_pairs(kMask, P), "panels load by pairs");
  for (int k = k_begin; k < k_end; ++k) {
    Vec<T> b[P];
    const W* wk = w + static_cast<long>(k) * P * L;
    const int ka = k - k_first;
    for (int p = 0; p + 1 < P; p += 2)
      if (kMask & (1u << p)) load_pair<T>(wk + p * L, b[p], b[p + 1]);
    if (P % 2 == 1 && (kMask & (1u << (P - 1)))) b[P - 1] = load_panel<T>(wk + (P - 1) * L);
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
template <typename T, typename W, int R, int P, unsigned kXMask, unsigned kHMask, bool kPerPanel, bool kSplitLast,
          bool kByColumns>
void tile_kernel(const Operands<T>& a, const W* w, int k0, int kx, int k1, bool accumulate, T* tile) {
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
  accumulate_products<T, W, R, P, kXMask, kPerPanel, kByColumns>(acc, a.x, a.ldx, 0, w, k0, split);
  if (kSplitLast && (split > k0 || !accumulate) && split < k1) {
    // Entering the h segment: the x sum is final (zero when there was none), the h sum starts.
    for (int r = 0; r < R; ++r) {
      store(tile + (r * S + last) * L, acc[r][last]);
      acc[r][last] = Vec<T>{};
    }
  }
  accumulate_products<T, W, R, P, kHMask, kPerPanel, kByColumns>(acc, a.h, a.ldh, kx, w, split, k1);
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) store(tile + (r * S + slot(p, k1 > kx)) * L, acc[r][p]);
}

// acc[r][q] += A[r][k] * W[k][p0 + q] (q = 0, 1) over k in [k_begin, k_end) of a group of P
// panels; A as in accumulate_products.
template <typename T, typename W, int R, int P, bool kPerPanel, bool kByColumns>
inline __attribute__((always_inline)) void accumulate_pair(Vec<T> (&acc)[R][2], const T* const* a, int lda,
                                                           int k_first, const W* w, int p0, int k_begin, int k_end) {
  constexpr int L = kLanes<T>;
  for (int k = k_begin; k < k_end; ++k) {
    Vec<T> b0, b1;
    load_pair<T>(w + (static_cast<long>(k) * P + p0) * L, b0, b1);
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

// acc[r] += A[r][k] * W[k][c] over k in [k_begin, k_end) for the one panel c of a group of P.
template <typename T, typename W, int R, int P, bool kPerPanel>
inline __attribute__((always_inline)) void accumulate_single(Vec<T> (&acc)[R], const T* const* a, int lda, int k_first,
                                                             const W* w, int c, int k_begin, int k_end) {
  constexpr int L = kLanes<T>;
  const T* ap = a[kPerPanel ? c : 0];
  for (int k = k_begin; k < k_end; ++k) {
    const Vec<T> b = load_panel<T>(w + (static_cast<long>(k) * P + c) * L);
    const int ka = k - k_first;
    for (int r = 0; r < R; ++r) acc[r] += ap[static_cast<long>(r) * lda + ka] * b;
  }
}

// Whether tile_kernel's tile for these panels may be summed in passes over pairs of panels (and
// a last odd panel alone): every pair feeds on both segments; a last odd panel on the x segment
// at least (the GRU's candidate: also on h, with its own slot when kSplitLast).
template <int P, unsigned kXMask, unsigned kHMask, bool kSplitLast>
constexpr bool kPairPasses = kPairRows > 0 && ((P == 4 && kXMask == 0xFu && kHMask == 0xFu && !kSplitLast) ||
                                               (P == 3 && kXMask == 0x7u && (kHMask & 0x3u) == 0x3u));

// Tile_kernel's tile of R rows in passes over pairs of panels, then a last odd panel alone:
// the same sums, in the same order, with fewer registers per row.
template <typename T, typename W, int R, int P, unsigned kHMask, bool kPerPanel, bool kSplitLast, bool kByColumns>
void pair_tile_kernel(const Operands<T>& a, const W* w, int k0, int kx, int k1, bool accumulate, T* tile) {
  constexpr int L = kLanes<T>, S = P + (kSplitLast ? 1 : 0);
  const int split = std::min(std::max(kx, k0), k1);
  for (int p0 = 0; p0 + 1 < P; p0 += 2) {
    Vec<T> acc[R][2];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 2; ++q) acc[r][q] = accumulate ? load(tile + (r * S + p0 + q) * L) : Vec<T>{};
    accumulate_pair<T, W, R, P, kPerPanel, kByColumns>(acc, a.x, a.ldx, 0, w, p0, k0, split);
    accumulate_pair<T, W, R, P, kPerPanel, kByColumns>(acc, a.h, a.ldh, kx, w, p0, split, k1);
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 2; ++q) store(tile + (r * S + p0 + q) * L, acc[r][q]);
  }
  if constexpr (P % 2 == 1) {
    static_assert(!kByColumns, "products by columns have 4 panels");
    constexpr int c = P - 1;
    // As tile_kernel does for its last panel: with kSplitLast the h sum goes to slot P.
    auto slot = [](bool in_h) { return kSplitLast && in_h ? P : c; };
    const bool fresh_h = kSplitLast && k0 == kx;
    Vec<T> acc[R];
    for (int r = 0; r < R; ++r) acc[r] = accumulate && !fresh_h ? load(tile + (r * S + slot(k0 >= kx)) * L) : Vec<T>{};
    accumulate_single<T, W, R, P, kPerPanel>(acc, a.x, a.ldx, 0, w, c, k0, split);
    if (kSplitLast && (split > k0 || !accumulate) && split < k1) {
      for (int r = 0; r < R; ++r) {
        store(tile + (r * S + c) * L, acc[r]);
        acc[r] = Vec<T>{};
      }
    }
    if constexpr ((kHMask >> c) & 1u) accumulate_single<T, W, R, P, kPerPanel>(acc, a.h, a.ldh, kx, w, c, split, k1);
    for (int r = 0; r < R; ++r) store(tile + (r * S + slot(k1 > kx)) * L, acc[r]);
  }
}

template <typename T, typename W, int P, unsigned kXMask, unsigned kHMask, bool kPerPanel, bool kSplitLast,
          bool kByColumns = false>
void tile_rows(int rows, const Operands<T>& a, const W* w, int k0, int kx, int k1, bool accumulate, T* tile) {
  const auto kernel = [&](auto r) {
    constexpr int R = decltype(r)::value;
    tile_kernel<T, W, R, P, kXMask, kHMask, kPerPanel, kSplitLast, kByColumns>(a, w, k0, kx, k1, accumulate, tile);
  };
  if constexpr (kPairPasses<P, kXMask, kHMask, kSplitLast>) {
    const auto pairs = [&](auto r) {
      pair_tile_kernel<T, W, decltype(r)::value, P, kHMask, kPerPanel, kSplitLast, kByColumns>(a, w, k0, kx, k1,
                                                                                              accumulate, tile);
    };
    if constexpr (P == 3) {
      // 3-4 rows of 3 panels fit the registers in one pass (9-12 accumulators); in passes, the
      // last panel's pass would have only 3-4 independent sums to wait on (measured slower at
      // B=3-4, one AVX2 core).
      if (rows == 4) return kernel(std::integral_constant<int, 4>{});
      if (rows == 3) return kernel(std::integral_constant<int, 3>{});
    }
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

template <typename T, typename W, int P, unsigned kXMask, unsigned kHMask, bool kSplitLast = false>
void tile_any(int rows, const Operands<T>& a, const W* w, int k0, int kx, int k1, bool accumulate, T* tile) {
  if (a.per_panel) tile_rows<T, W, P, kXMask, kHMask, true, kSplitLast>(rows, a, w, k0, kx, k1, accumulate, tile);
  else tile_rows<T, W, P, kXMask, kHMask, false, kSplitLast>(rows, a, w, k0, kx, k1, accumulate, tile);
}

template <typename T, typename W>
void tile_of_kind(PanelKind kind, int rows, const Operands<T>& a, const W* w, int k0, int kx, int k1, bool accumulate,
                  T* tile) {
  switch (kind) {
    case PanelKind::kAll: return tile_any<T, W, 4, 0xFu, 0xFu>(rows, a, w, k0, kx, k1, accumulate, tile);
    case PanelKind::kGruAfter: return tile_any<T, W, 3, 0x7u, 0x7u, true>(rows, a, w, k0, kx, k1, accumulate, tile);
    case PanelKind::kGruBefore: return tile_any<T, W, 3, 0x7u, 0x3u>(rows, a, w, k0, kx, k1, accumulate, tile);
  }
}

}  // namespace

AlignedVector<Bf16> bf16_panels(int panels, const AlignedVector<float>& packed, const char* weights) {
  constexpr int L = kLanes<float>;
  const long row = static_cast<long>(panels) * L, values = static_cast<long>(packed.size());
  AlignedVector<Bf16> out(packed.size());
  for (long base = 0; base < values; base += row) {
    for (int p = 0; p + 1 < panels; p += 2)
      for (int l = 0; l < L; ++l) {
        out[base + p * L + 2 * l] = to_bf16(packed[base + p * L + l]);
        out[base + p * L + 2 * l + 1] = to_bf16(packed[base + (p + 1) * L + l]);
      }
    if (panels % 2 == 1)
      for (int l = 0; l < L; ++l) out[base + (panels - 1) * L + l] = to_bf16(packed[base + (panels - 1) * L + l]);
  }
  for (const Bf16 v : out)
    if ((v & 0x7F80u) == 0x7F80u)  // an exponent of all ones: rounded to infinity
      throw std::domain_error(std::string(weights) + ": a weight is beyond bfloat16's range (about 3.4e38)");
  return out;
}

template <typename T>
void panel_tile(PanelKind kind, int rows, const Operands<T>& a, const T* w, int k0, int kx, int k1, bool accumulate,
                T* tile) {
  tile_of_kind(kind, rows, a, w, k0, kx, k1, accumulate, tile);
}

void panel_tile(PanelKind kind, int rows, const Operands<float>& a, const Bf16* w, int k0, int kx, int k1,
                bool accumulate, float* tile) {
  tile_of_kind(kind, rows, a, w, k0, kx, k1, accumulate, tile);
}

template <typename T>
void panel_tile_by_columns(int rows, const T* a, int lda, const T* w, int k0, int k1, bool accumulate, T* tile) {
  const Operands<T> columns = Operands<T>::contiguous(&a, lda, false, 0);  // one segment: K ends at kx = k1
  tile_rows<T, T, 4, 0xFu, 0xFu, false, false, true>(rows, columns, w, k0, k1, k1, accumulate, tile);
}

template void panel_tile<float>(PanelKind, int, const Operands<float>&, const float*, int, int, int, bool, float*);
template void panel_tile<double>(PanelKind, int, const Operands<double>&, const double*, int, int, int, bool,
                                 double*);
template void panel_tile_by_columns<float>(int, const float*, int, const float*, int, int, bool, float*);
template void panel_tile_by_columns<double>(int, const double*, int, const double*, int, int, bool, double*);

}  // namespace cpu
}  // namespace fusedrnn
