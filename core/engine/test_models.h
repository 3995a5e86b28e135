// Small models for engine tests and benchmarks: an MLP and one transformer block, each with an
// MSE loss against batch["y"], deterministic from a seed.
//
//   auto mlp = zt::testing::MakeMlp(/*seed=*/1, /*in=*/8, /*hidden=*/16, /*out=*/4);
//   zt::Batch b = zt::testing::MlpBatch(/*seed=*/7, /*samples=*/12, 8, 4);
#ifndef ZEROTRAIN_CORE_ENGINE_TEST_MODELS_H_
#define ZEROTRAIN_CORE_ENGINE_TEST_MODELS_H_

#include <cstdint>
#include <memory>

#include "core/engine/model.h"

namespace zt::testing {

// Both models mark stage-3 units (core/zero/unit.h): the MLP's two linear layers; in a
// transformer block its attention sublayer and its feedforward sublayer.  Below stage 3 units
// are plain pass-throughs.
//
// x [n, in] -> Linear -> GELU -> Linear -> [n, out]; loss = mean((out - y)^2).
std::shared_ptr<Model> MakeMlp(std::uint64_t seed, std::int64_t in, std::int64_t hidden, std::int64_t out);
Batch MlpBatch(std::uint64_t seed, std::int64_t samples, std::int64_t in, std::int64_t out);

// x [n, seq, dim] -> pre-LayerNorm multi-head self-attention + MLP block -> [n, seq, dim];
// loss = mean((out - y)^2).  The qkv projection has no bias: the key part of such a bias has an
// exactly zero gradient (softmax ignores a shift shared by all keys), so its computed gradient
// is rounding noise, which Adam normalises into steps of about lr: no two implementations (nor
// two batch splits) agree on it, and equivalence tests could not compare it.
std::shared_ptr<Model> MakeTransformerBlock(std::uint64_t seed, std::int64_t dim, std::int64_t heads,
                                            std::int64_t mlp_hidden);
// `layers` of those blocks in sequence (same loss), for benchmarks.
std::shared_ptr<Model> MakeTransformerStack(std::uint64_t seed, std::int64_t layers, std::int64_t dim,
                                            std::int64_t heads, std::int64_t mlp_hidden);
Batch TransformerBatch(std::uint64_t seed, std::int64_t samples, std::int64_t seq, std::int64_t dim);

// Rows [begin, begin + count) of every tensor of the batch (the first dimension is samples).
Batch Slice(const Batch& b, std::int64_t begin, std::int64_t count);

}  // namespace zt::testing

#endif  // ZEROTRAIN_CORE_ENGINE_TEST_MODELS_H_
