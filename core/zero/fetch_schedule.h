// ZeRO stage 3's fetch schedule: which units to gather ahead of use and which to release after,
// from the order units ran in before.  Pure bookkeeping (no tensors, no communication), so it
// is tested on its own.
//
//   zt::FetchSchedule::Options o;
//   o.prefetch_elems = 5000;  o.max_live_elems = 9000;  o.max_reuse_distance = 0;
//   zt::FetchSchedule s({4096, 4096, 1024}, o);
//   s.BeginPass(zt::FetchSchedule::kForward);
//   std::vector<int> gather = s.OnNeed(0);     // {0, 1}: unit 0 now, unit 1 prefetched
//   ... gather them, mark them live with SetLive ...
//   std::vector<int> release = s.OnDone(0);    // {0}: not needed again soon
//
// - The first forward (and backward) pass records the order units ran in; later passes follow
//   it: OnNeed(u) finds u's next occurrence and prefetches the units after it until
//   prefetch_elems (stage3_prefetch_bucket_size) more elements are on the way.
// - max_live_elems (stage3_max_live_parameters) caps what is gathered at once: prefetching stops
//   at the cap, and a needed unit first evicts live units that are not in use (the one used
//   furthest in the future first).  A needed unit is gathered even over the cap.
// - OnDone(u) keeps u when its next use comes within max_reuse_distance elements of other units'
//   use (stage3_max_reuse_distance), else releases it.
// - Ranks whose passes diverge from the recorded order (data-dependent control flow) still get
//   correct answers: a unit not at the expected place is looked up, or fetched alone.
#ifndef ZEROTRAIN_CORE_ZERO_FETCH_SCHEDULE_H_
#define ZEROTRAIN_CORE_ZERO_FETCH_SCHEDULE_H_

#include <cstdint>
#include <vector>

namespace zt {

class FetchSchedule {
 public:
  enum Pass { kForward = 0, kBackward = 1 };
  struct Options {
    std::int64_t prefetch_elems = 50000000;
    std::int64_t max_live_elems = 1000000000;
    std::int64_t max_reuse_distance = 1000000000;
  };

  FetchSchedule(std::vector<std::int64_t> unit_elems, Options options);

  // Starts a pass; the first pass of each kind records its order.  Returns the live units not
  // in use, which the coordinator releases (what a pass prefetched but did not use).
  std::vector<int> BeginPass(Pass pass);
  // Unit u is needed now.  Returns the units to gather, u first (when it is not live), then
  // prefetches; evictions needed to respect the cap come from TakeEvictions().
  std::vector<int> OnNeed(int u);
  // Unit u's use ended.  Returns the units to release now.
  std::vector<int> OnDone(int u);
  // Units to release before gathering what OnNeed returned (to stay under max_live_elems).
  std::vector<int> TakeEvictions();

  // The coordinator reports what is gathered (live) and what is being used.
  void SetLive(int u, bool live);
  void SetInUse(int u, bool in_use);
  bool live(int u) const { return live_[u]; }
  std::int64_t live_elems() const { return live_elems_; }

  // The recorded order of a pass kind (unit ids), for tests and logs.
  const std::vector<int>& trace(Pass pass) const { return trace_[pass]; }
  bool recording() const { return recording_; }

 private:
  // Index of u's next occurrence in the current trace at or after pos_, or -1.
  int FindNext(int u) const;
  // Elements of other units used between trace positions from and u's next use after from.
  std::int64_t DistanceToNextUse(int u, int from) const;
  void EvictFor(std::int64_t incoming, int keep);

  std::vector<std::int64_t> elems_;
  Options options_;
  Pass pass_ = kForward;
  bool recording_ = true;
  bool recorded_[2] = {false, false};
  std::vector<int> trace_[2];
  int pos_ = 0;  // next expected position in trace_[pass_]
  std::vector<bool> live_;
  std::vector<bool> in_use_;
  std::int64_t live_elems_ = 0;
  std::vector<int> evictions_;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_FETCH_SCHEDULE_H_
