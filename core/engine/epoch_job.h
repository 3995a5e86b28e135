// What the epoch-based jobs share (molecule_train, climate_train): their engine from the
// DeepSpeed config with HF-style defaults (AdamW, WarmupCosineLR, one optimizer step per batch,
// "auto" values from the flags), and the training loop over epochs, with checkpoints every
// --save_steps and --resume_from_checkpoint (job_checkpoint.h).
//
//   zt::EpochJobArgs a = ...;  // from the job's flags
//   ASSIGN_OR_RETURN(std::unique_ptr<zt::Engine> engine,
//                    zt::CreateEpochJobEngine(model, comm, a, train.size(), say));
//   RETURN_IF_ERROR(zt::TrainEpochs(*engine, a, train, batch_of, epoch_metrics, checkpoint, say));
#ifndef ZEROTRAIN_CORE_ENGINE_EPOCH_JOB_H_
#define ZEROTRAIN_CORE_ENGINE_EPOCH_JOB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/comm/communicator.h"
#include "core/engine/engine.h"
#include "core/engine/model.h"

namespace zt {

struct EpochJobArgs {
  std::string name;        // the binary ("molecule_train"): in messages and checkpoints
  std::string deepspeed;   // the --deepspeed config ("": the built-in one, ZeRO-0)
  std::string output_dir;  // where checkpoint-N go (resolved)
  int epochs = 1;
  int batch_size = 1;  // per device
  double learning_rate = 1e-3, weight_decay = 0, warmup_ratio = 0, max_grad_norm = 1;
  bool bf16 = false, fp16 = false;
  std::int64_t hidden_size = 0;  // the config's "auto" bucket sizes
  std::uint64_t seed = 0;        // epoch e shuffles with seed + e
  std::int64_t save_steps = 0, save_total_limit = -1;
  std::string resume_from_checkpoint;
  double peak_tflops = 0;  // the device's peak for MFU; 0: from the card's name
};

// The shared fields of a job's own args (MoleculeTrainArgs, ClimateTrainArgs: the same names).
template <typename JobArgs>
EpochJobArgs EpochJobArgsFrom(const JobArgs& a, std::string name, std::string output_dir, std::int64_t hidden_size) {
  EpochJobArgs e;
  e.name = std::move(name);
  e.deepspeed = a.deepspeed;
  e.output_dir = std::move(output_dir);
  e.epochs = a.epochs;
  e.batch_size = a.batch_size;
  e.learning_rate = a.learning_rate;
  e.weight_decay = a.weight_decay;
  e.warmup_ratio = a.warmup_ratio;
  e.max_grad_norm = a.max_grad_norm;
  e.bf16 = a.bf16;
  e.fp16 = a.fp16;
  e.hidden_size = hidden_size;
  e.seed = a.seed;
  e.save_steps = a.save_steps;
  e.save_total_limit = a.save_total_limit;
  e.resume_from_checkpoint = a.resume_from_checkpoint;
  e.peak_tflops = a.peak_tflops;
  return e;
}

// Batches per epoch on each rank: the training items dealt over the ranks (padded), in batches.
std::int64_t StepsPerEpoch(const EpochJobArgs& args, std::int64_t train_size, int world);

// The engine, its step lines set to the run's steps (Engine::SetProgress); `say` (rank 0's
// lines) gets the engine line.
absl::StatusOr<std::unique_ptr<Engine>> CreateEpochJobEngine(std::shared_ptr<Model> model,
                                                             std::shared_ptr<Communicator> comm,
                                                             const EpochJobArgs& args, std::int64_t train_size,
                                                             const std::function<void(const std::string&)>& say);

struct EpochJobHooks {
  // The batch of the given training items.
  std::function<Batch(const std::vector<std::int64_t>& items)> batch_of;
  // After each epoch (every rank): what to add to the epoch's line (", valid_rmse 0.91").
  std::function<absl::StatusOr<std::string>()> epoch_metrics;
  // The job's own files for checkpoint-N (every rank calls it; it picks the rank that writes).
  std::function<absl::Status(const std::string& dir)> export_files;
  // Written by rank 0 into the engine's step directory (the model's config.json).
  std::map<std::string, std::string> checkpoint_files;
  std::function<void(const std::string&)> say;
};

// Trains args.epochs epochs over `train` (each epoch's share as torch's DistributedSampler deals
// it), resuming first when args.resume_from_checkpoint says so, and saving every save_steps.
absl::Status TrainEpochs(Engine& engine, const EpochJobArgs& args, const std::vector<std::int64_t>& train,
                         const EpochJobHooks& hooks);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ENGINE_EPOCH_JOB_H_
