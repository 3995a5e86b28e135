#include "core/engine/epoch_job.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/config/config.h"
#include "core/engine/job_checkpoint.h"
#include "core/engine/job_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace zt {

std::int64_t StepsPerEpoch(const EpochJobArgs& args, std::int64_t train_size, int world) {
  const std::int64_t per_rank = (train_size + world - 1) / world;
  return (per_rank + args.batch_size - 1) / args.batch_size;
}

absl::StatusOr<std::unique_ptr<Engine>> CreateEpochJobEngine(std::shared_ptr<Model> model,
                                                             std::shared_ptr<Communicator> comm,
                                                             const EpochJobArgs& args, std::int64_t train_size,
                                                             const std::function<void(const std::string&)>& say) {
  std::string source;
  ASSIGN_OR_RETURN(nlohmann::json j, ReadDeepSpeedJson(args.deepspeed,
                                                       {{"train_micro_batch_size_per_gpu", "auto"},
                                                        {"gradient_accumulation_steps", 1},
                                                        {"gradient_clipping", "auto"},
                                                        {"zero_optimization", {{"stage", 0}}}},
                                                       &source));
  AddJobDefaults(j, {{"type", "AdamW"}, {"params", {{"lr", "auto"}, {"weight_decay", "auto"}}}},
                 {{"type", "WarmupCosineLR"},
                  {"params",
                   {{"total_num_steps", "auto"},
                    {"warmup_num_steps", "auto"},
                    {"warmup_min_ratio", 0},
                    {"cos_min_ratio", 0.01},
                    {"warmup_type", "linear"}}}},
                 args.bf16, args.fp16);
  const std::int64_t steps_per_epoch = StepsPerEpoch(args, train_size, comm->world_size());
  AutoValues job;
  job.lr = args.learning_rate;
  job.weight_decay = args.weight_decay;
  job.micro_batch = args.batch_size;
  job.gradient_accumulation_steps = 1;
  job.max_grad_norm = args.max_grad_norm;
  job.total_steps = std::max<std::int64_t>(steps_per_epoch * args.epochs, 1);
  job.warmup_steps = static_cast<std::int64_t>(std::ceil(args.warmup_ratio * *job.total_steps));
  job.fp16 = args.fp16;
  job.bf16 = args.bf16;
  job.hidden_size = args.hidden_size;
  job.world_size = comm->world_size();
  ASSIGN_OR_RETURN(Config config, Config::FromJson(j.dump(), source, job));
  if (config.gradient_accumulation_steps != 1) {
    return absl::UnimplementedError(absl::StrCat(source, ": gradient_accumulation_steps ",
                                                 config.gradient_accumulation_steps, ": ", args.name,
                                                 " steps every micro-batch; set it to 1"));
  }
  const int world = comm->world_size();
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(std::move(model), config, std::move(comm)));
  say(absl::StrFormat("engine: ZeRO stage %d, %d rank(s), %s, device %s, %d steps (%d per epoch)",
                      config.zero_optimization.stage, world, PrecisionName(config), engine->device().str(),
                      *job.total_steps, steps_per_epoch));
  ProgressOptions progress;
  progress.total_steps = *job.total_steps;
  progress.steps_per_epoch = steps_per_epoch;
  progress.report_every = std::max<std::int64_t>(*job.total_steps / 10, 1);
  progress.peak_tflops = args.peak_tflops;
  engine->SetProgress(progress);
  return engine;
}

absl::Status TrainEpochs(Engine& engine, const EpochJobArgs& args, const std::vector<std::int64_t>& train,
                         const EpochJobHooks& hooks) {
  using Clock = std::chrono::steady_clock;
  Communicator& comm = engine.comm();
  const int rank = comm.rank(), world = comm.world_size();
  const std::int64_t steps_per_epoch = StepsPerEpoch(args, static_cast<std::int64_t>(train.size()), world);
  ASSIGN_OR_RETURN(const EpochPosition start,
                   ResumeEpochJob(engine, args.resume_from_checkpoint, args.output_dir, args.name));
  if (!start.resumed_from.empty()) {
    hooks.say(absl::StrFormat("resumed from %s: epoch %d, batch %d of %d", start.resumed_from, start.epoch,
                              start.step_in_epoch, steps_per_epoch));
  }
  for (int epoch = start.epoch; epoch <= args.epochs; ++epoch) {
    const bool resumed = epoch == start.epoch;
    const auto t0 = Clock::now();
    const std::vector<std::int64_t> mine = RankShare(train, args.seed + epoch, rank, world);
    double loss_sum = resumed ? start.loss_sum : 0;
    for (std::int64_t s = resumed ? start.step_in_epoch : 0; s < steps_per_epoch; ++s) {
      const std::int64_t begin = s * args.batch_size;
      const std::vector<std::int64_t> items(
          mine.begin() + begin, mine.begin() + std::min<std::int64_t>(begin + args.batch_size, mine.size()));
      ASSIGN_OR_RETURN(at::Tensor loss, engine.Forward(hooks.batch_of(items)));
      RETURN_IF_ERROR(engine.Backward(loss));
      RETURN_IF_ERROR(engine.Step());
      loss_sum += loss.detach().item<double>();
      RETURN_IF_ERROR(MaybeSaveEpochJob(engine, args.name, args.output_dir, args.save_steps, args.save_total_limit,
                                        {epoch, s + 1, loss_sum}, hooks.checkpoint_files, hooks.export_files));
    }
    ASSIGN_OR_RETURN(const double loss_total,
                     SumOverRanks(comm, loss_sum / std::max<std::int64_t>(steps_per_epoch, 1), engine.device()));
    std::string line =
        absl::StrFormat("epoch %d/%d: train_loss %.4f, lr %.2e", epoch, args.epochs, loss_total / world, engine.lr());
    ASSIGN_OR_RETURN(const std::string metrics, hooks.epoch_metrics());
    hooks.say(absl::StrCat(line, metrics,
                           absl::StrFormat(", %.1f s", std::chrono::duration<double>(Clock::now() - t0).count())));
  }
  return absl::OkStatus();
}

}  // namespace zt
