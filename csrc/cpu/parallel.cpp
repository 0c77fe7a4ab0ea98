#include "cpu/parallel.h"

#include <atomic>

namespace fusedrnn {
namespace cpu {
namespace {
// Read once from the OpenMP runtime (which honours OMP_NUM_THREADS), then owned here so that a
// setting made from any Python thread applies to kernels launched from every thread.
std::atomic<int>& thread_setting() {
  static std::atomic<int> n{omp_get_max_threads()};
  return n;
}

std::atomic<bool> g_claim_others_first{false};
std::atomic<long> g_min_parallel_step_macs{kMinParallelStepMacs};
}  // namespace

long min_parallel_step_macs() { return g_min_parallel_step_macs.load(std::memory_order_relaxed); }
void set_min_parallel_step_macs(long n) { g_min_parallel_step_macs.store(n < 0 ? 0 : n); }

bool BlockClaims::claim_others_first() { return g_claim_others_first.load(std::memory_order_relaxed); }
void BlockClaims::set_claim_others_first(bool on) { g_claim_others_first.store(on); }

int num_threads() { return thread_setting().load(); }

void set_num_threads(int n) { thread_setting().store(n < 1 ? 1 : n); }

int region_threads() {
  if (scipy_openblas_get_num_threads() != 1) blas_use_single_thread();
  return num_threads();
}

}  // namespace cpu
}  // namespace fusedrnn
