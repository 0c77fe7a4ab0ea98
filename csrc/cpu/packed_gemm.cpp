#include "cpu/packed_gemm.h"

#include <algorithm>

#if defined(__AVX512F__)
#include <immintrin.h>
#define FUSEDRNN_PACKED_AVX512 1
#else
#define FUSEDRNN_PACKED_AVX512 0
#endif

namespace fusedrnn {
namespace cpu {

namespace {

// The unpacked fallback: BLAS on the original (possibly transposed) matrix.
template <typename T>
void blas_multiply(int m, int n, const T* a, int lda, const T* src, long k_stride, long n_stride, int k_begin,
                   int k_end, T beta, T* c, int ldc) {
  const T* b = src + static_cast<long>(k_begin) * k_stride;
  if (n_stride == 1) {
    gemm(false, false, m, n, k_end - k_begin, T(1), a + k_begin, lda, b, static_cast<int>(k_stride), beta, c, ldc);
  } else {
    gemm(false, true, m, n, k_end - k_begin, T(1), a + k_begin, lda, b, static_cast<int>(n_stride), beta, c, ldc);
  }
}

#if FUSEDRNN_PACKED_AVX512
// C[R rows, 32 or 16 columns] (+)= A[R, K] * two (or one) panels. R <= 8 rows; `cols` valid
// columns among the 32 (masked stores past the matrix edge).
template <int R, int P>
inline void micro_kernel(int k, const float* a, int lda, const float* p0, long panel_stride, float beta, float* c,
                         int ldc, int cols) {
  __m512 acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) acc[r][q] = _mm512_setzero_ps();
  for (int kk = 0; kk < k; ++kk) {
    __m512 b[P];
    for (int q = 0; q < P; ++q) b[q] = _mm512_loadu_ps(p0 + q * panel_stride + kk * kPanelWidth);
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[static_cast<long>(r) * lda + kk]);
      for (int q = 0; q < P; ++q) acc[r][q] = _mm512_fmadd_ps(av, b[q], acc[r][q]);
    }
  }
  for (int q = 0; q < P; ++q) {
    const int valid = std::min(kPanelWidth, cols - q * kPanelWidth);
    if (valid <= 0) break;
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
    for (int r = 0; r < R; ++r) {
      float* cr = c + static_cast<long>(r) * ldc + q * kPanelWidth;
      __m512 v = acc[r][q];
      if (beta != 0.0f) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, cr));
      _mm512_mask_storeu_ps(cr, mask, v);
    }
  }
}

template <int P>
inline void rows_kernel(int rows, int k, const float* a, int lda, const float* p0, long panel_stride, float beta,
                        float* c, int ldc, int cols) {
  switch (rows) {
    case 1: micro_kernel<1, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
    case 2: micro_kernel<2, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
    case 3: micro_kernel<3, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
    case 4: micro_kernel<4, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
    case 5: micro_kernel<5, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
    case 6: micro_kernel<6, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
    case 7: micro_kernel<7, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
    default: micro_kernel<8, P>(k, a, lda, p0, panel_stride, beta, c, ldc, cols); break;
  }
}
#endif

}  // namespace

template <typename T>
void PackedMatrix<T>::pack(int k, int n, const T* src, long k_stride, long n_stride) {
  k_ = k;
  n_ = n;
  src_ = src;
  k_stride_ = k_stride;
  n_stride_ = n_stride;
#if FUSEDRNN_PACKED_AVX512
  if constexpr (std::is_same<T, float>::value) {
    const int panels = (n + kPanelWidth - 1) / kPanelWidth;
    panels_.assign(static_cast<size_t>(panels) * k * kPanelWidth, T(0));
    for (int p = 0; p < panels; ++p) {
      T* dst = panels_.data() + static_cast<long>(p) * k * kPanelWidth;
      const int width = std::min(kPanelWidth, n - p * kPanelWidth);
      for (int kk = 0; kk < k; ++kk)
        for (int j = 0; j < width; ++j)
          dst[kk * kPanelWidth + j] = src[kk * k_stride + static_cast<long>(p * kPanelWidth + j) * n_stride];
    }
  }
#endif
}

template <typename T>
void PackedMatrix<T>::multiply(int m, const T* a, int lda, int k_begin, int k_end, T beta, T* c, int ldc) const {
  if (m <= 0 || n_ <= 0) return;
#if FUSEDRNN_PACKED_AVX512
  if constexpr (std::is_same<T, float>::value) {
    const long panel_stride = static_cast<long>(k_) * kPanelWidth;
    const int k = k_end - k_begin;
    for (int n0 = 0; n0 < n_; n0 += 2 * kPanelWidth) {
      const float* p0 = panels_.data() + (n0 / kPanelWidth) * panel_stride + static_cast<long>(k_begin) * kPanelWidth;
      const int cols = std::min(2 * kPanelWidth, n_ - n0);
      for (int m0 = 0; m0 < m; m0 += 8) {
        const int rows = std::min(8, m - m0);
        const float* am = a + static_cast<long>(m0) * lda + k_begin;
        float* cm = c + static_cast<long>(m0) * ldc + n0;
        if (cols > kPanelWidth) rows_kernel<2>(rows, k, am, lda, p0, panel_stride, beta, cm, ldc, cols);
        else rows_kernel<1>(rows, k, am, lda, p0, panel_stride, beta, cm, ldc, cols);
      }
    }
    return;
  }
#endif
  blas_multiply(m, n_, a, lda, src_, k_stride_, n_stride_, k_begin, k_end, beta, c, ldc);
}

template class PackedMatrix<float>;
template class PackedMatrix<double>;

}  // namespace cpu
}  // namespace fusedrnn
