#include "cpu/optimizers.h"

#include <cmath>

#include "cpu/parallel.h"

namespace fusedrnn {
namespace cpu {

namespace {
// Small updates stay on the calling thread: a parallel region costs more than they do.
constexpr long kParallelThreshold = 1 << 15;
}  // namespace

template <typename T>
void adam_update(long n, T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T alpha,
                 T one_minus_b1, T one_minus_b2, T epsilon) {
  const int nt = n >= kParallelThreshold ? region_threads() : 1;
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (long k = 0; k < n; ++k) {
    const T gk = g[k];
    const T mk = m[k] + (gk - m[k]) * one_minus_b1;
    const T vk = v[k] + (gk * gk - v[k]) * one_minus_b2;
    m[k] = mk;
    v[k] = vk;
    p[k] -= (mk * alpha) / (std::sqrt(vk) + epsilon);
  }
}

template <typename T>
void rmsprop_update(long n, T* __restrict p, const T* __restrict g, T* __restrict v, T learning_rate, T rho,
                    T one_minus_rho, T epsilon) {
  const int nt = n >= kParallelThreshold ? region_threads() : 1;
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (long k = 0; k < n; ++k) {
    const T gk = g[k];
    const T vk = v[k] * rho + (gk * gk) * one_minus_rho;
    v[k] = vk;
    p[k] -= (gk * learning_rate) / std::sqrt(vk + epsilon);
  }
}

template void adam_update<float>(long, float*, const float*, float*, float*, float, float, float, float);
template void adam_update<double>(long, double*, const double*, double*, double*, double, double, double, double);
template void rmsprop_update<float>(long, float*, const float*, float*, float, float, float, float);
template void rmsprop_update<double>(long, double*, const double*, double*, double, double, double, double);

}  // namespace cpu
}  // namespace fusedrnn
