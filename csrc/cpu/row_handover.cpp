#include "cpu/row_handover.h"

namespace fusedrnn {
namespace cpu {

namespace {
std::atomic<int> g_hold_first_thread_us{0};
std::atomic<long> g_handovers{0};
}  // namespace

int RowHandover::hold_first_thread_us() { return g_hold_first_thread_us.load(std::memory_order_relaxed); }
void RowHandover::set_hold_first_thread_us(int us) { g_hold_first_thread_us.store(us < 0 ? 0 : us); }

long RowHandover::handovers_made() { return g_handovers.load(std::memory_order_relaxed); }

void RowHandover::hold_first_thread(int tid) const {
  const int us = hold_first_thread_us();
  if (us <= 0) return;
  const double until = omp_get_wtime() + 1e-6 * us;
  while (slots_[tid].asked_by.load(std::memory_order_acquire) < 0 && omp_get_wtime() < until) spin_pause();
}

void RowHandover::wait_for_first_thread() const {
  const int us = hold_first_thread_us();
  if (us <= 0) return;
  const double until = omp_get_wtime() + 1e-6 * us;
  while (slots_[0].entered.load(std::memory_order_acquire) == 0 && omp_get_wtime() < until) spin_pause();
}

RowHandover::RowHandover(int threads) : threads_(threads), slots_(new Slot[threads]) {}

void RowHandover::enter(int tid) {
  slots_[tid].entered.store(1, std::memory_order_release);
  slots_[tid].in_loop.store(1, std::memory_order_seq_cst);
}

void RowHandover::leave(int tid) {
  Slot& me = slots_[tid];
  me.in_loop.store(0, std::memory_order_seq_cst);
  // A thread that asked before the store above waits for an answer: it gets a no.
  const int asker = me.asked_by.exchange(-1, std::memory_order_seq_cst);
  if (asker >= 0) slots_[asker].reply.store(kDeclined, std::memory_order_release);
}

void RowHandover::answer(int tid, Range* rows, int next_step, int steps_left) {
  const int asker = slots_[tid].asked_by.exchange(-1, std::memory_order_seq_cst);
  if (asker < 0) return;  // withdrawn
  Slot& to = slots_[asker];
  const int half = rows->size() / 2;  // the smaller half: the one it gives
  if (half >= kMinRows && steps_left >= kMinSteps) {
    to.given = Range{rows->end - half, rows->end};
    to.from_step = next_step;
    rows->end -= half;
    g_handovers.fetch_add(1, std::memory_order_relaxed);
    to.reply.store(kGiven, std::memory_order_release);
  } else {
    to.reply.store(kDeclined, std::memory_order_release);
  }
}

bool RowHandover::take(int tid, int nt, Range& rows, int& from_step) {
  Slot& me = slots_[tid];
  if (nt > threads_) return false;
  for (int k = 1; k < nt; ++k) {
    const int other = (tid + k) % nt;
    Slot& it = slots_[other];
    if (it.in_loop.load(std::memory_order_seq_cst) == 0) continue;
    me.reply.store(kWaiting, std::memory_order_relaxed);
    int nobody = -1;
    if (!it.asked_by.compare_exchange_strong(nobody, tid, std::memory_order_seq_cst)) continue;  // asked by another
    // If it left its loop meanwhile, take the request back; if it was faster, its leave() answers.
    if (it.in_loop.load(std::memory_order_seq_cst) == 0) {
      int mine = tid;
      if (it.asked_by.compare_exchange_strong(mine, -1, std::memory_order_seq_cst)) continue;
    }
    int reply;
    while ((reply = me.reply.load(std::memory_order_acquire)) == kWaiting) spin_pause();
    if (reply == kGiven) {
      rows = me.given;
      from_step = me.from_step;
      return true;
    }
  }
  return false;
}

}  // namespace cpu
}  // namespace fusedrnn
