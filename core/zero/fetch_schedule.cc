#include "core/zero/fetch_schedule.h"

#include <algorithm>

namespace zt {

FetchSchedule::FetchSchedule(std::vector<std::int64_t> unit_elems, Options options)
    : elems_(std::move(unit_elems)), options_(options), live_(elems_.size(), false), in_use_(elems_.size(), false) {}

std::vector<int> FetchSchedule::BeginPass(Pass pass) {
  if (recording_ && !trace_[pass_].empty()) recorded_[pass_] = true;
  pass_ = pass;
  recording_ = !recorded_[pass];
  if (recording_) trace_[pass].clear();
  pos_ = 0;
  std::vector<int> release;
  for (std::size_t u = 0; u < live_.size(); ++u) {
    if (live_[u] && !in_use_[u]) release.push_back(static_cast<int>(u));
  }
  return release;
}

int FetchSchedule::FindNext(int u) const {
  const std::vector<int>& t = trace_[pass_];
  const int n = static_cast<int>(t.size());
  for (int k = 0; k < n; ++k) {
    const int i = (pos_ + k) % n;  // wraps: loops (generation) repeat the trace
    if (t[i] == u) return i;
  }
  return -1;
}

std::int64_t FetchSchedule::DistanceToNextUse(int u, int from) const {
  const std::vector<int>& t = trace_[pass_];
  std::int64_t d = 0;
  for (int i = from; i < static_cast<int>(t.size()); ++i) {
    if (t[i] == u) return d;
    d += elems_[t[i]];
  }
  return -1;
}

void FetchSchedule::EvictFor(std::int64_t incoming, int keep) {
  std::int64_t projected = live_elems_;
  for (int v : evictions_) projected -= elems_[v];
  while (projected + incoming > options_.max_live_elems) {
    // The live unit not in use whose next use is furthest away (or never) goes first.
    int victim = -1;
    std::int64_t victim_distance = -2;
    for (std::size_t v = 0; v < live_.size(); ++v) {
      if (!live_[v] || in_use_[v] || static_cast<int>(v) == keep) continue;
      if (std::find(evictions_.begin(), evictions_.end(), static_cast<int>(v)) != evictions_.end()) continue;
      std::int64_t d = recording_ ? -1 : DistanceToNextUse(static_cast<int>(v), pos_);
      if (d < 0) d = INT64_MAX;  // not used again this pass: the best victim
      if (d > victim_distance) {
        victim = static_cast<int>(v);
        victim_distance = d;
      }
    }
    if (victim < 0) return;  // everything live is in use: the needed unit goes over the cap
    evictions_.push_back(victim);
    projected -= elems_[victim];
  }
}

std::vector<int> FetchSchedule::OnNeed(int u) {
  std::vector<int> gather;
  if (!live_[u]) {
    EvictFor(elems_[u], u);
    gather.push_back(u);
  }
  if (recording_) {
    trace_[pass_].push_back(u);
    return gather;
  }
  const int at = FindNext(u);
  if (at < 0) return gather;  // off the recorded order: no prefetch
  pos_ = at + 1;
  // Prefetch what comes next, up to prefetch_elems, without going over the live cap.
  std::int64_t ahead = 0;
  std::int64_t projected = live_elems_ + (live_[u] ? 0 : elems_[u]);
  for (int v : evictions_) projected -= elems_[v];
  const std::vector<int>& t = trace_[pass_];
  for (int i = pos_; i < static_cast<int>(t.size()) && ahead < options_.prefetch_elems; ++i) {
    const int v = t[i];
    if (v == u || std::find(gather.begin(), gather.end(), v) != gather.end()) continue;
    if (live_[v]) {  // already here or on the way: counts toward the window
      ahead += elems_[v];
      continue;
    }
    if (projected + elems_[v] > options_.max_live_elems) break;
    gather.push_back(v);
    ahead += elems_[v];
    projected += elems_[v];
  }
  return gather;
}

std::vector<int> FetchSchedule::OnDone(int u) {
  if (!live_[u] || in_use_[u]) return {};
  if (!recording_) {
    const std::int64_t d = DistanceToNextUse(u, pos_);
    if (d >= 0 && d <= options_.max_reuse_distance) return {};  // used again soon: keep it
  }
  return {u};
}

std::vector<int> FetchSchedule::TakeEvictions() {
  std::vector<int> out;
  out.swap(evictions_);
  return out;
}

void FetchSchedule::SetLive(int u, bool live) {
  if (live_[u] == live) return;
  live_[u] = live;
  live_elems_ += live ? elems_[u] : -elems_[u];
}

void FetchSchedule::SetInUse(int u, bool in_use) { in_use_[u] = in_use; }

}  // namespace zt
