// Sharding arithmetic of ZeRO, as a pure CPU library: where each parameter lives in the flat
// buffer, which rank owns which shard, and how gradients are cut into buckets.
//
//   zt::FlatLayout layout = zt::FlatLayout::Make({4096, 4096, 10}, /*world=*/3);
//   // layout.total() == 8202, layout.shard_size() == 2734, layout.padded() == 8202
//   std::vector<zt::GradBucket> buckets = zt::PlanBuckets(layout, /*bucket_elems=*/1000, true);
//
// The flat buffer holds the parameters back to back in model order, then zeros up to
// padded() = world x shard_size(), shard_size() = ceil(total / world): rank r owns the
// elements [r x S, (r+1) x S).  Every rank's optimizer state is exactly S elements per
// tensor; the last shard ends with the padding (uneven tails).
#ifndef ZEROTRAIN_CORE_ZERO_PARTITION_H_
#define ZEROTRAIN_CORE_ZERO_PARTITION_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace zt {

struct Range {
  std::int64_t begin = 0;
  std::int64_t end = 0;  // exclusive
  std::int64_t size() const { return end - begin; }
  bool empty() const { return end <= begin; }
};

class FlatLayout {
 public:
  // numels: the parameters' element counts in model order.  world >= 1.
  static FlatLayout Make(absl::Span<const std::int64_t> numels, int world);

  int world() const { return world_; }
  std::int64_t total() const { return total_; }            // sum of numels
  std::int64_t shard_size() const { return shard_size_; }  // ceil(total / world)
  std::int64_t padded() const { return shard_size_ * world_; }
  std::int64_t num_params() const { return static_cast<std::int64_t>(offsets_.size()); }
  Range param(std::int64_t i) const { return {offsets_[i], offsets_[i] + numels_[i]}; }
  Range shard(int rank) const { return {rank * shard_size_, (rank + 1) * shard_size_}; }
  // The rank whose shard holds flat element `e`.
  int owner(std::int64_t e) const { return shard_size_ == 0 ? 0 : static_cast<int>(e / shard_size_); }
  // Parameters overlapping [r.begin, r.end), in model order.
  std::vector<std::int64_t> ParamsIn(Range r) const;

 private:
  int world_ = 1;
  std::int64_t total_ = 0;
  std::int64_t shard_size_ = 0;
  std::vector<std::int64_t> offsets_;
  std::vector<std::int64_t> numels_;
};

// A contiguous run of the flat gradient buffer that is reduced as one collective.
struct GradBucket {
  Range range;
  int owner = 0;                     // the rank owning range (when within one shard)
  std::vector<std::int64_t> params;  // parameters overlapping range, in model order
};

// Cuts [0, total) into buckets of at most bucket_elems elements, in the order backward
// produces gradients (from the last parameter to the first): returned buckets go from the end
// of the buffer to its start.  Bucket edges fall on parameter edges where a whole parameter
// fits, so a bucket completes when its parameters' gradients are in; a parameter larger than a
// bucket is split.  With within_shards, no bucket crosses a shard boundary, so each has one
// owner (reduce-to-owner, stage 1/2).
std::vector<GradBucket> PlanBuckets(const FlatLayout& layout, std::int64_t bucket_elems, bool within_shards);

// Cuts one shard into chunks of at most chunk_elems for bucketed all-gathers; offsets are
// relative to the shard's start.
std::vector<Range> PlanChunks(std::int64_t shard_size, std::int64_t chunk_elems);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_PARTITION_H_
