// Stage-3 units: the pieces of a model (a transformer block, an embedding, a head) whose
// parameters ZeRO stage 3 partitions over ranks and gathers only while they run.
//
//   class Model : public zt::Model {
//     Model() {
//       for (int i = 0; i < 24; ++i)
//         blocks_.push_back(register_module("block" + std::to_string(i), zt::MakeUnit(std::make_shared<Block>())));
//     }
//     at::Tensor Forward(const zt::Batch& b) override {
//       at::Tensor x = ...;
//       for (auto& blk : blocks_) x = blk->forward(x);   // gathers, runs Block::forward, releases
//       ...
//     }
//     std::vector<std::shared_ptr<zt::Unit<Block>>> blocks_;
//   };
//
// Without an engine at stage 3 a unit is a plain pass-through (stages 0-2 train the same model).
// At stage 3 the engine attaches a UnitFetcher to every unit it finds in the model: the unit's
// forward asks it to gather the unit's parameters, runs the inner module, hands it the
// outputs (to gather again before their backward) and lets it release the parameters.  No
// global state and no patched modules: the unit holds the fetcher the engine gave it.
// Units do not nest.  A unit's parameters are registered under "<unit>.module.<name>".
#ifndef ZEROTRAIN_CORE_ZERO_UNIT_H_
#define ZEROTRAIN_CORE_ZERO_UNIT_H_

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace zt {

// A unit's partitioned parameters at stage 3: views of one flat buffer in the compute dtype
// whose memory exists only while the unit is gathered, and this rank's shard of it.
struct UnitStorage {
  std::vector<at::Tensor> params;  // the unit's partitioned parameters (views of full)
  std::vector<std::string> names;  // their names within the unit's module
  std::int64_t numel = 0;          // their total element count
  std::int64_t shard_size = 0;     // ceil(numel / world): each rank's part
  at::Tensor full;                 // [world x shard_size], storage released when not gathered
  at::Tensor shard;                // [shard_size], this rank's part (its own memory)
};

// What a unit asks of the engine at stage 3 (implemented by the stage-3 coordinator).  Errors
// are thrown (the engine's Forward/Backward turn them into a Status).
class UnitFetcher {
 public:
  virtual ~UnitFetcher() = default;
  // The unit's full parameters are in place when this returns.
  virtual void BeginForward(int unit) = 0;
  // The unit's forward finished (or threw, with no outputs): outputs that require grad get a
  // hook that gathers the unit again before its backward.  Never communicates.
  virtual void EndForward(int unit, const std::vector<at::Tensor>& outputs) noexcept = 0;
};

class UnitBase : public torch::nn::Module {
 public:
  // The engine attaches its fetcher at stage 3; nullptr detaches.
  void AttachFetcher(UnitFetcher* fetcher, int id) {
    fetcher_ = fetcher;
    id_ = id;
  }
  int unit_id() const { return id_; }
  UnitFetcher* fetcher() const { return fetcher_; }
  virtual torch::nn::Module& inner() = 0;

  // Set when the unit was built sharded (zero_init.h) or adopted by a stage-3 engine.
  const std::shared_ptr<UnitStorage>& storage() const { return storage_; }
  void set_storage(std::shared_ptr<UnitStorage> s) { storage_ = std::move(s); }

 protected:
  UnitBase() = default;
  UnitFetcher* fetcher_ = nullptr;
  int id_ = -1;
  std::shared_ptr<UnitStorage> storage_;
};

namespace unit_internal {

inline void Collect(const at::Tensor& t, std::vector<at::Tensor>& out) {
  if (t.defined() && t.requires_grad()) out.push_back(t);
}
inline void Collect(const std::vector<at::Tensor>& ts, std::vector<at::Tensor>& out) {
  for (const auto& t : ts) Collect(t, out);
}
template <typename... Ts>
void Collect(const std::tuple<Ts...>& t, std::vector<at::Tensor>& out) {
  std::apply([&](const auto&... x) { (Collect(x, out), ...); }, t);
}
template <typename A, typename B>
void Collect(const std::pair<A, B>& p, std::vector<at::Tensor>& out) {
  Collect(p.first, out);
  Collect(p.second, out);
}
// Other output types carry no tensors the engine can see; a unit returning tensors inside its
// own struct must expose them as a tuple or vector instead.
template <typename T>
void Collect(const T&, std::vector<at::Tensor>&) {}

}  // namespace unit_internal

template <typename M>
class Unit : public UnitBase {
 public:
  explicit Unit(std::shared_ptr<M> module) : module_(register_module("module", std::move(module))) {}

  // M's forward, between a gather and a release at stage 3.
  template <typename... Args>
  decltype(auto) forward(Args&&... args) {
    if (fetcher_ == nullptr) return module_->forward(std::forward<Args>(args)...);
    fetcher_->BeginForward(id_);
    struct Guard {  // releases the unit even when the inner forward throws
      UnitFetcher* f;
      int id;
      bool done = false;
      ~Guard() {
        if (!done) f->EndForward(id, {});
      }
    } guard{fetcher_, id_};
    decltype(auto) out = module_->forward(std::forward<Args>(args)...);
    std::vector<at::Tensor> outputs;
    unit_internal::Collect(out, outputs);
    guard.done = true;
    fetcher_->EndForward(id_, outputs);
    return out;
  }

  M& module() { return *module_; }
  const std::shared_ptr<M>& module_ptr() const { return module_; }
  torch::nn::Module& inner() override { return *module_; }

 private:
  std::shared_ptr<M> module_;
};

template <typename M>
std::shared_ptr<Unit<M>> MakeUnit(std::shared_ptr<M> module) {
  return std::make_shared<Unit<M>>(std::move(module));
}

// For its lifetime, every stage-3 unit of `m` runs its inner module directly, the caller having
// gathered the parameters (Engine::GatherParameters): evaluation, generation and prediction do
// not go through the fetch schedule.
class PlainUnits {
 public:
  explicit PlainUnits(torch::nn::Module& m) {
    for (const auto& mod : m.modules()) {
      if (auto* u = dynamic_cast<UnitBase*>(mod.get()); u != nullptr && u->fetcher() != nullptr) {
        saved_.emplace_back(u, u->fetcher(), u->unit_id());
        u->AttachFetcher(nullptr, -1);
      }
    }
  }
  ~PlainUnits() {
    for (auto& [u, f, id] : saved_) u->AttachFetcher(f, id);
  }
  PlainUnits(const PlainUnits&) = delete;
  PlainUnits& operator=(const PlainUnits&) = delete;

 private:
  std::vector<std::tuple<UnitBase*, UnitFetcher*, int>> saved_;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_UNIT_H_
