#include "core/zero/partition.h"

#include <algorithm>

namespace zt {

FlatLayout FlatLayout::Make(absl::Span<const std::int64_t> numels, int world) {
  FlatLayout l;
  l.world_ = std::max(1, world);
  l.numels_.assign(numels.begin(), numels.end());
  l.offsets_.reserve(numels.size());
  for (std::int64_t n : numels) {
    l.offsets_.push_back(l.total_);
    l.total_ += n;
  }
  l.shard_size_ = (l.total_ + l.world_ - 1) / l.world_;
  return l;
}

std::vector<std::int64_t> FlatLayout::ParamsIn(Range r) const {
  std::vector<std::int64_t> out;
  // offsets_ is sorted: the first candidate is the last parameter starting at or before begin.
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), r.begin);
  std::int64_t i = std::max<std::int64_t>(0, (it - offsets_.begin()) - 1);
  for (; i < num_params() && offsets_[i] < r.end; ++i) {
    if (numels_[i] > 0 && offsets_[i] + numels_[i] > r.begin) out.push_back(i);
  }
  return out;
}

std::vector<GradBucket> PlanBuckets(const FlatLayout& layout, std::int64_t bucket_elems, bool within_shards) {
  std::vector<GradBucket> buckets;
  bucket_elems = std::max<std::int64_t>(1, bucket_elems);
  // Parameter starts, ascending, for "the smallest start >= x".
  std::vector<std::int64_t> starts;
  for (std::int64_t i = 0; i < layout.num_params(); ++i) {
    if (layout.param(i).size() > 0) starts.push_back(layout.param(i).begin);
  }
  std::int64_t pos = layout.total();
  while (pos > 0) {
    std::int64_t floor = std::max<std::int64_t>(0, pos - bucket_elems);
    bool forced = floor == 0;  // a cut at floor is required anyway: take it
    if (within_shards && layout.shard_size() > 0) {
      const std::int64_t shard_start = (pos - 1) / layout.shard_size() * layout.shard_size();
      if (shard_start >= floor) {
        floor = shard_start;
        forced = true;
      }
    }
    // Otherwise the bucket is size-limited: end it on a parameter edge at or above floor if
    // there is one, else split the parameter at floor.
    std::int64_t lo = floor;
    if (!forced) {
      auto it = std::lower_bound(starts.begin(), starts.end(), floor);
      if (it != starts.end() && *it < pos) lo = *it;
    }
    GradBucket b;
    b.range = {lo, pos};
    b.owner = layout.owner(lo);
    b.params = layout.ParamsIn(b.range);
    buckets.push_back(std::move(b));
    pos = lo;
  }
  return buckets;
}

std::vector<Range> PlanChunks(std::int64_t shard_size, std::int64_t chunk_elems) {
  std::vector<Range> out;
  chunk_elems = std::max<std::int64_t>(1, chunk_elems);
  for (std::int64_t b = 0; b < shard_size; b += chunk_elems) out.push_back({b, std::min(shard_size, b + chunk_elems)});
  return out;
}

}  // namespace zt
