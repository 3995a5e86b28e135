// Stage 3's parameter shards on NVMe (offload_param device nvme): one swap file per rank with
// each swapped unit's shard (compute dtype) at a 4 KiB-aligned offset, moved through
// `buffer_count` host buffers (pinned on CUDA) of the largest shard's size.
//
//   ASSIGN_OR_RETURN(auto swap, zt::ParamSwap::Create(options, {shard_elems_of_unit_a, ...}));
//   RETURN_IF_ERROR(swap->Write(0, initial_shard));               // whole shard
//   ASSIGN_OR_RETURN(at::Tensor source, swap->Fetch(0));          // on options.device, for the all-gather
//   RETURN_IF_ERROR(swap->Put(0, offset, values));                // the optimizer's output, in order
//   RETURN_IF_ERROR(swap->Flush());                                // before the next Fetch of an updated unit
//
// Fetch reads the shard into the next free buffer and returns it on the device: on CUDA the copy
// up is queued on the current stream from the pinned buffer (the buffer is reused only after
// an event says the copy ran), on the CPU a fresh tensor.  Put assembles a shard from the
// optimizer's sub-groups, which arrive in increasing offsets, and writes it once complete.
#ifndef ZEROTRAIN_CORE_ZERO_PARAM_SWAP_H_
#define ZEROTRAIN_CORE_ZERO_PARAM_SWAP_H_

#include <ATen/core/Tensor.h>
#include <c10/core/Event.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/zero/io_buffer.h"
#include "io/io_engine.h"
#include "io/swap_file.h"

namespace zt {

struct ParamSwapOptions {
  io::IoEngine* io = nullptr;  // not owned
  std::string dir;             // offload_param.nvme_path
  std::string name;            // the swap file's name, unique per rank and process
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;  // where Fetch puts the shard
  int buffer_count = 5;          // offload_param.buffer_count
  bool pin_memory = true;        // pin the buffers (CUDA only)
};

class ParamSwap {
 public:
  // shard_elems: the size of each swapped shard, in the caller's numbering 0, 1, ...
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ParamSwap>> Create(const ParamSwapOptions& options,
                                                                         std::vector<std::int64_t> shard_elems);
  ~ParamSwap();

  // Bytes of swap file for these shards.
  static std::uint64_t FileBytes(const std::vector<std::int64_t>& shard_elems, at::ScalarType dtype);

  [[nodiscard]] absl::Status Write(int i, const at::Tensor& values);
  [[nodiscard]] absl::StatusOr<at::Tensor> Fetch(int i);
  [[nodiscard]] absl::Status Put(int i, std::int64_t offset, const at::Tensor& values);
  [[nodiscard]] absl::Status Flush();  // waits for every write in flight

  const io::SwapFile& file() const { return file_; }
  std::int64_t fetches() const { return fetches_; }

 private:
  struct Buffer {
    IoBuffer mem;
    io::IoHandle write;
    std::optional<c10::Event> copied;  // the copy up from it (CUDA)
  };
  ParamSwap(const ParamSwapOptions& options, std::vector<std::int64_t> shard_elems);
  void Init();
  Buffer& Acquire();  // the next buffer, once free; throws StatusException
  at::Tensor View(Buffer& b, std::int64_t elems) const;
  void StartWrite(int i, Buffer& b);

  ParamSwapOptions options_;
  std::vector<std::int64_t> elems_;
  std::vector<std::uint64_t> offsets_;  // bytes in the file
  io::SwapFile file_;
  std::vector<Buffer> buffers_;
  std::size_t next_ = 0;
  int assembling_ = -1;  // Put's shard in progress, in buffers_[assembly_]
  std::size_t assembly_ = 0;
  std::int64_t assembled_ = 0;
  std::int64_t fetches_ = 0;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_PARAM_SWAP_H_
