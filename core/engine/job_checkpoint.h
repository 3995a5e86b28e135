// The jobs' checkpoints in HF Trainer's layout (t5_translate, molecule_train, climate_train):
//
//   OUTPUT_DIR/checkpoint-N/
//     <what the job exports: HF model files, trainer_state.json, ...>
//     latest, global_stepN/        the engine's state (Engine::SaveCheckpoint), written last
//
// A checkpoint-N without `latest` is incomplete (a save was interrupted) and is never resumed
// from.
//
//   // flags: --save_steps, --save_total_limit, --resume_from_checkpoint DIR|latest
//   ASSIGN_OR_RETURN(std::string from, zt::ResolveResumeFromCheckpoint(flag, output_dir));
//   if (!from.empty()) ASSIGN_OR_RETURN(zt::LoadedCheckpoint c, engine->LoadCheckpoint(from));
//   ...
//   RETURN_IF_ERROR(zt::SaveJobCheckpoint(*engine, output_dir, options, save_total_limit));
#ifndef ZEROTRAIN_CORE_ENGINE_JOB_CHECKPOINT_H_
#define ZEROTRAIN_CORE_ENGINE_JOB_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/comm/communicator.h"
#include "core/engine/engine.h"

namespace zt {

// OUTPUT_DIR/checkpoint-<step>.
std::string JobCheckpointDir(const std::string& output_dir, std::int64_t step);

// The steps of the complete checkpoint-N directories in output_dir, ascending (none if
// output_dir does not exist).
absl::StatusOr<std::vector<std::int64_t>> ListJobCheckpoints(const std::string& output_dir);

// HF's --resume_from_checkpoint: "" (none) gives ""; "latest" or "true" gives the newest complete
// checkpoint-N in output_dir (kNotFound naming output_dir if there is none); anything else is a
// path (a checkpoint-N, a save directory with `latest`, or a global_stepN directory), which must
// exist.
absl::StatusOr<std::string> ResolveResumeFromCheckpoint(const std::string& arg, const std::string& output_dir);

// The engine's state into OUTPUT_DIR/checkpoint-<global step> (every rank), then, on rank 0,
// HF's save_total_limit: only the newest `save_total_limit` complete checkpoints stay (all with
// a limit <= 0); the newest complete one is never deleted, and incomplete ones older than it go
// too.  Whatever the job exports into that directory it writes before this call.
absl::Status SaveJobCheckpoint(Engine& engine, const std::string& output_dir, const SaveCheckpointOptions& options,
                               std::int64_t save_total_limit);

// The rotation alone (rank 0).
absl::Status RotateJobCheckpoints(const std::string& output_dir, std::int64_t save_total_limit);

// Running sums each rank keeps for itself (its loss sums) travel in a checkpoint's client state
// as every rank's value: RanksValues gathers them (every rank calls it) and RankValue hands this
// rank its own back.  At another world size rank 0 gets their total scaled by new / old world
// size and the others 0, so the mean over the ranks of each rank's mean (how the jobs report
// their loss) keeps its value.
absl::StatusOr<std::vector<double>> RanksValues(Communicator& comm, double mine, const at::Device& device);
double RankValue(const std::vector<double>& saved, int rank, int world);

// Epoch-based jobs (molecule_train, climate_train, one optimizer step per batch): where training
// is, kept in their checkpoints.
struct EpochPosition {
  int epoch = 1;                   // 1-based
  std::int64_t step_in_epoch = 0;  // the epoch's next batch
  double loss_sum = 0;             // this rank's loss sum over the epoch's batches so far
  std::string resumed_from;        // the step directory loaded ("" when starting fresh)
};

// --resume_from_checkpoint for such a job: loads the engine's state and returns where training
// continues ({1, 0, 0} without a checkpoint).  `job` names the binary in errors.
absl::StatusOr<EpochPosition> ResumeEpochJob(Engine& engine, const std::string& resume_from_checkpoint,
                                             const std::string& output_dir, const std::string& job);

// After an optimizer step (every rank): when the global step is a multiple of save_steps (> 0),
// `export_files(dir)` writes the job's own files into checkpoint-N (it decides which rank writes),
// then the engine's state with `next` (where a resumed run starts) and `files`, and the rotation.
absl::Status MaybeSaveEpochJob(Engine& engine, const std::string& job, const std::string& output_dir,
                               std::int64_t save_steps, std::int64_t save_total_limit, const EpochPosition& next,
                               const std::map<std::string, std::string>& files,
                               const std::function<absl::Status(const std::string& dir)>& export_files);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ENGINE_JOB_CHECKPOINT_H_
