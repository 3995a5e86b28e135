// ZeRO-Offload's optimizer: the fp32 master weights and Adam moments of a shard live in host
// memory (pinned when training on CUDA and pin_memory is set) and are updated by the SIMD CPU
// Adam (ops/cpu_adam.h); the device keeps only the compute-dtype parameters.
//
//   ASSIGN_OR_RETURN(auto opt, zt::HostAdam::Create(device_shard, config.optimizer.adam, options));
//   // during backward, as each bucket of reduced gradients is final:
//   RETURN_IF_ERROR(opt->CopyGradsDown(offset, device_grads.narrow(0, offset, len)));
//   // at the step:
//   RETURN_IF_ERROR(opt->Step(device_grads, lr, beta1, beta2, grad_scale));   // updates device_shard
//
// Gradients travel down on a copy stream as they become final, overlapping backward; Step
// copies whatever has not travelled, then runs CPU Adam chunk by chunk (sub_group_size) with
// the updated parameters written out in the compute dtype in the same pass, and copies each
// chunk back up while the CPU works on the next (two pinned staging buffers alternate).  On a
// CPU device the copies are plain memory copies and the state is the same host memory.
//
// With HostAdamOptions::swap (offload_optimizer device nvme, ZeRO-Infinity) the master weights
// and moments live in a swap file instead, sub-group by sub-group ([master | exp_avg |
// exp_avg_sq], each region 4 KiB aligned), and only `buffer_count` sub-groups are in host
// memory at a time: the step reads a sub-group, runs CPU Adam on it and writes it back, with
// pipeline_read reading the next sub-groups while the CPU works and pipeline_write leaving the
// write in flight while the next sub-group computes.
#ifndef ZEROTRAIN_CORE_OPTIM_HOST_ADAM_H_
#define ZEROTRAIN_CORE_OPTIM_HOST_ADAM_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/config/config.h"
#include "core/zero/io_buffer.h"
#include "core/zero/partition.h"
#include "io/io_engine.h"
#include "io/swap_file.h"
#include "ops/cpu_adam.h"

namespace zt {

// offload_optimizer device nvme: where and how the optimizer state is swapped.
struct HostAdamSwap {
  io::IoEngine* io = nullptr;   // not owned; outlives the optimizer
  std::string dir;              // offload_optimizer.nvme_path
  std::string name;             // the swap file's name in `dir`, unique per rank and process
  int buffer_count = 4;         // sub-groups in host memory at once
  bool pipeline_read = false;   // read the next sub-groups while the CPU steps this one
  bool pipeline_write = false;  // write a sub-group back while the next one steps
  bool fast_init = false;       // moments start as zeros in memory, not written at creation
};

struct HostAdamOptions {
  bool pin_memory = true;                 // offload_optimizer.pin_memory (CUDA only)
  std::int64_t chunk_elems = 1000000000;  // sub_group_size: CPU Adam / copy-back granularity
  int threads = 0;                        // CPU Adam threads (0: all)
  // Where the gradients handed to CopyGradsDown/Step live (CUDA: copied down; CPU: read in place).
  at::Device grads_device = at::kCPU;
  std::optional<HostAdamSwap> swap;  // set: the state lives in a swap file (NVMe)
  // Set: the updated parameters (compute dtype, host memory) are handed here sub-group by
  // sub-group in increasing offsets (stage 3 with parameters on NVMe routes them to their
  // units); the `device_params` given to Create then only supply the initial values and are
  // not kept.
  std::function<absl::Status(std::int64_t offset, const at::Tensor& values)> params_out;
};

class HostAdam {
 public:
  // params: the compute-dtype shard this optimizer updates (its values become the fp32 master
  // weights), float, bfloat16 or half.  On a CUDA device its new values are copied up; in host
  // memory (CPU training, or stage 3 with offload_param) CPU Adam writes them in place.
  static absl::StatusOr<std::unique_ptr<HostAdam>> Create(at::Tensor device_params, const AdamConfig& config,
                                                          const HostAdamOptions& options);
  ~HostAdam();

  // Starts copying device gradients [offset, offset + slice.numel()) of the shard to host memory
  // (on the copy stream, after what the current stream has queued).
  [[nodiscard]] absl::Status CopyGradsDown(std::int64_t offset, const at::Tensor& slice);
  // One update from the shard's fp32 gradients (device) times grad_scale; the device parameters
  // hold the new values when the current stream reaches its next work.
  [[nodiscard]] absl::Status Step(const at::Tensor& device_grads, double lr, double beta1, double beta2,
                                  float grad_scale);
  // Forgets the gradient copies of a skipped step.
  void DropGrads() { copied_.clear(); }

  // The state in host memory; undefined when it is swapped (ReadState reads it back).
  const at::Tensor& master() const { return master_; }
  const at::Tensor& exp_avg() const { return exp_avg_; }
  const at::Tensor& exp_avg_sq() const { return exp_avg_sq_; }
  std::int64_t step_count() const { return step_; }
  // Writes values into the master weights (GatheredParameters with a modifier rank).
  [[nodiscard]] absl::Status SetMaster(const at::Tensor& values);

  struct State {
    at::Tensor master, exp_avg, exp_avg_sq;  // host fp32, fresh copies
  };
  // The whole state, wherever it lives (swap file or host memory).
  [[nodiscard]] absl::StatusOr<State> ReadState();
  // Resume from a checkpoint: the whole state (host fp32, the shard's size) and the number of
  // updates taken, written wherever it lives.  The parameters are not touched.
  [[nodiscard]] absl::Status RestoreState(const State& state, std::int64_t step);
  bool swapped() const { return swap_file_.has_value(); }
  const io::SwapFile* swap_file() const { return swap_file_ ? &*swap_file_ : nullptr; }
  // Bytes of swap file a shard of n elements needs with sub-groups of chunk_elems.
  static std::uint64_t SwapBytes(std::int64_t n, std::int64_t chunk_elems);

 private:
  HostAdam(at::Tensor device_params, const AdamConfig& config, const HostAdamOptions& options);
  void Init();  // allocates the host state; LibTorch errors throw
  void InitSwap();
  void CopyMissingGrads(const at::Tensor& device_grads);
  // One sub-group's CPU Adam output: the 16-bit values for the copy up (CUDA parameters) or
  // where the host parameters are.
  void StepSwapped(const float* grads, const ops::AdamStep& s, const ops::CpuAdamOptions& cpu);
  void Emit(std::int64_t offset, const at::Tensor& values);  // params_out; throws StatusException
  void WaitSwap(const io::IoHandle& h) const;                // throws StatusException
  void FlushSwap();                                          // waits for writes in flight
  std::int64_t chunk() const;
  void BeginCopyUp();
  void CopyUp(int k, std::int64_t off, std::int64_t len, const at::Tensor& src);
  void EndCopyUp();

  at::Tensor device_params_;  // undefined after Init with params_out
  std::int64_t n_ = 0;
  at::ScalarType dtype_;  // of the parameters
  AdamConfig config_;
  HostAdamOptions options_;
  bool cuda_grads_ = false;                   // gradients come from a CUDA device: copy them down
  bool cuda_params_ = false;                  // parameters live on a CUDA device: copy them up
  at::Tensor master_, exp_avg_, exp_avg_sq_;  // host fp32
  at::Tensor grads_;                          // host fp32, staging of the device gradients
  at::Tensor out16_[2];                       // host compute-dtype staging for the copy back
  std::optional<c10::Stream> copy_stream_;
  std::optional<c10::Event> out_done_[2];
  std::vector<Range> copied_;  // gradient ranges already on their way down this step
  std::optional<c10::Event> grads_down_;
  std::int64_t step_ = 0;

  // Swapped state (options_.swap).
  struct SwapBuffer {
    IoBuffer mem;  // 3 * stride bytes: master | exp_avg | exp_avg_sq
    io::IoHandle read, write;
  };
  std::optional<io::SwapFile> swap_file_;
  std::vector<SwapBuffer> bufs_;
  std::int64_t stride_ = 0;  // bytes per region of a sub-group
  bool fresh_ = false;       // fast_init: the moments are not on disk yet (zeros)
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_OPTIM_HOST_ADAM_H_
