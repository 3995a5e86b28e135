// The climate_train job: CF netCDF fields in (--files, --variables), a split along time, the
// ClimaX-style forecaster trained by the engine to predict the fields --lead_steps ahead, and in
// --output_dir: metrics.json (latitude-weighted RMSE and ACC per variable beside the persistence
// and climatology baselines), predictions.nc (the test forecasts on the input's grid, with its
// coordinates and attributes) and checkpoint/ (config.json, model.safetensors,
// normalization.json).  --inspect prints what the files hold and exits.
#ifndef ZEROTRAIN_SCIENCE_CLIMATE_TRAIN_H_
#define ZEROTRAIN_SCIENCE_CLIMATE_TRAIN_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace zt::science::climate {

struct ClimateTrainArgs {
  // Data.  No files: the embedded default (libncarg-data's sample fields).
  std::string files;      // comma-separated paths or globs
  std::string variables;  // "tas,uas,vas" or "t@500"
  bool inspect = false;
  int lead_steps = 1;
  double train_fraction = 0.7, valid_fraction = 0.15;  // along time; test: the rest

  // Model.
  int patch = 4, embed = 128, depth = 4, heads = 4;
  double dropout = 0.0;

  // Training.
  std::string deepspeed;
  std::string output_dir;
  bool overwrite_output_dir = false;
  // Checkpoints (HF's flags): output_dir/checkpoint-N every save_steps optimizer steps (0: none),
  // the newest save_total_limit kept (<= 0: all); resume from a checkpoint-N or "latest".
  std::int64_t save_steps = 0, save_total_limit = -1;
  std::string resume_from_checkpoint;
  double peak_tflops = 0;  // the device's dense peak for MFU; 0: from the card's name
  int epochs = 20;
  int batch_size = 8;  // per device
  double learning_rate = 5e-4, weight_decay = 1e-5, warmup_ratio = 0.05, max_grad_norm = 1.0;
  std::uint64_t seed = 0;
  bool bf16 = false, fp16 = false, use_cpu = false;
};

// Runs the job on this process's rank (RANK/WORLD_SIZE/MASTER_ADDR from the environment).
absl::Status RunClimateTraining(const ClimateTrainArgs& args);

}  // namespace zt::science::climate

#endif  // ZEROTRAIN_SCIENCE_CLIMATE_TRAIN_H_
