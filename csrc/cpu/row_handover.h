// Rebalancing a batch split inside a time loop. Under a split of the batch every thread runs the
// time loop on its own rows, which are independent sequences; on a VM one virtual CPU is often
// slower than the other for seconds at a time (the threads of a forward pass at the IMDB shape
// finished 8-29 % of its time apart). A thread that has run out of rows asks a thread that is
// still in its loop for the second half of its rows; that thread answers at its next step
// boundary, and both carry on from there without further contact. A row's results do not
// depend on which thread computes it, so the outputs are the same bit for bit.
#pragma once

#include <atomic>
#include <memory>

#include "cpu/parallel.h"

namespace fusedrnn {
namespace cpu {

class RowHandover {
 public:
  // A handover leaves at least kMinRows rows with each thread (smaller register tiles are
  // slower) and at least kMinSteps steps to go (otherwise the asking costs more than it saves).
  static constexpr int kMinRows = 8;
  static constexpr int kMinSteps = 4;

  explicit RowHandover(int threads);

  // The thread (in a time loop on `rows`, about to run step `next_step` with `steps_left` steps
  // to go, counting that one) gives the second half of its rows to a thread that asked, if any
  // and if both halves are worth it. One relaxed load when nobody asked.
  void offer(int tid, Range& rows, int next_step, int steps_left) {
    if (slots_[tid].asked_by.load(std::memory_order_relaxed) >= 0) answer(tid, &rows, next_step, steps_left);
  }
  // The thread enters a time loop (it can be asked from now on) / has no rows left to give (a
  // pending request is declined). It must leave before it asks others in take().
  void enter(int tid);
  void leave(int tid);
  // Asks the other threads of a team of `nt`, one after the other, for rows: true with `rows`
  // and the step to start from when one gives them, false when none does.
  bool take(int tid, int nt, Range& rows, int& from_step);

  // Test hook: thread 0 waits at the start of each of its time loops until another thread has
  // asked it for rows, or at most this many microseconds, so that the others run out of rows
  // first and ask it for some. The others wait as long at most, before they take any rows, for
  // thread 0 to enter its first loop (on a busy machine they could otherwise take all the rows
  // before it starts).
  static int hold_first_thread_us();
  static void set_hold_first_thread_us(int us);
  void hold_first_thread(int tid) const;  // thread 0's wait
  void wait_for_first_thread() const;     // the others' wait
  // Test hook: handovers made since the process started.
  static long handovers_made();

 private:
  enum Reply : int { kWaiting, kGiven, kDeclined };
  struct alignas(64) Slot {
    std::atomic<int> in_loop{0};
    std::atomic<int> entered{0};  // has entered a loop (test hook)
    std::atomic<int> asked_by{-1};  // the thread waiting on this one's answer
    std::atomic<int> reply{kWaiting};  // for this thread as the asker
    Range given{0, 0};
    int from_step = 0;
  };
  void answer(int tid, Range* rows, int next_step, int steps_left);

  int threads_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace cpu
}  // namespace fusedrnn
