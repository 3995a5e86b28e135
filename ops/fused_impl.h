// The registration slot behind ops' fused entry points (rms_norm, linear_cross_entropy): a CUDA
// library stores its implementation from a static initializer, so ops/ itself needs no CUDA,
// and an environment variable set to "reference" sends calls to the reference instead.
#ifndef ZEROTRAIN_OPS_FUSED_IMPL_H_
#define ZEROTRAIN_OPS_FUSED_IMPL_H_

#include <atomic>

namespace zt::ops {

// Whether `env_var` asks for the reference ("reference"); read once per variable by the caller.
bool ReferenceForced(const char* env_var);

template <typename Fn>
class FusedImpl {
 public:
  explicit FusedImpl(const char* env_var) : force_reference_(ReferenceForced(env_var)) {}
  void Set(Fn fn) { fn_.store(fn, std::memory_order_release); }
  bool registered() const { return fn_.load(std::memory_order_acquire) != nullptr; }
  // The registered function, or null when none is or the reference is forced.
  Fn Get() const { return force_reference_ ? nullptr : fn_.load(std::memory_order_acquire); }

 private:
  std::atomic<Fn> fn_{nullptr};
  const bool force_reference_;
};

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_FUSED_IMPL_H_
