// //science:climate_train: a ClimaX-style forecaster of CF netCDF fields on the zerotrain engine.
//
//   bazel run //science:climate_train -- --files 'era5/*.nc' --variables t2m,u10,v10,z@500
//       --lead_steps 6 --deepspeed ds_config_zero2.json --bf16 --output_dir out
//   bazel run //science:climate_train -- --files 'era5/*.nc' --variables t2m --inspect
//
// With no arguments: the sample fields libncarg-data ships (tas, uas, vas), a few minutes on a
// CPU, latitude-weighted RMSE and ACC beside persistence and climatology.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "science/climate/train.h"

using zt::science::climate::ClimateTrainArgs;
const ClimateTrainArgs kDefaults;

ABSL_FLAG(std::string, files, "", "netCDF files: comma-separated paths or globs (one variable per file is fine)");
ABSL_FLAG(std::string, variables, "", "comma-separated variables, var@level for one level (e.g. tas,uas,z@500)");
ABSL_FLAG(bool, inspect, false, "print each variable's dims, units and min/mean/max, then exit");
ABSL_FLAG(int32_t, lead_steps, kDefaults.lead_steps, "forecast this many time steps ahead");
ABSL_FLAG(double, train_fraction, kDefaults.train_fraction, "the first fraction of the time steps trains");
ABSL_FLAG(double, valid_fraction, kDefaults.valid_fraction, "the next fraction validates (the rest is the test)");
ABSL_FLAG(int32_t, patch, kDefaults.patch, "patch size in grid cells");
ABSL_FLAG(int32_t, embed, kDefaults.embed, "embedding size");
ABSL_FLAG(int32_t, depth, kDefaults.depth, "transformer blocks");
ABSL_FLAG(int32_t, heads, kDefaults.heads, "attention heads");
ABSL_FLAG(double, dropout, kDefaults.dropout, "dropout");
ABSL_FLAG(std::string, deepspeed, "", "DeepSpeed JSON config (ZeRO stage, offload, precision, optimizer)");
ABSL_FLAG(std::string, output_dir, "",
          "where metrics.json, predictions.nc and checkpoint/ go (default climate_output)");
ABSL_FLAG(bool, overwrite_output_dir, false, "write into a non-empty --output_dir");
ABSL_FLAG(int64_t, save_steps, 0,
          "write output_dir/checkpoint-N (model and the engine's full state) every N optimizer steps; 0: none");
ABSL_FLAG(int64_t, save_total_limit, -1, "keep only the newest N checkpoint-N directories");
ABSL_FLAG(double, peak_tflops, 0,
          "the device's dense bf16/fp16 peak TFLOPS for the MFU figures (0: from the GPU's name; none on a CPU)");
ABSL_FLAG(std::string, resume_from_checkpoint, "",
          "continue training from a checkpoint-N directory, or from the newest one in --output_dir with \"latest\"");
ABSL_FLAG(int32_t, epochs, kDefaults.epochs, "training epochs");
ABSL_FLAG(int32_t, batch_size, kDefaults.batch_size, "samples per device and step");
ABSL_FLAG(double, learning_rate, kDefaults.learning_rate, "peak learning rate (AdamW, warmup then cosine)");
ABSL_FLAG(double, weight_decay, kDefaults.weight_decay, "AdamW weight decay");
ABSL_FLAG(double, warmup_ratio, kDefaults.warmup_ratio, "fraction of the steps spent warming up");
ABSL_FLAG(double, max_grad_norm, kDefaults.max_grad_norm, "gradient clipping");
ABSL_FLAG(uint64_t, seed, kDefaults.seed, "seed for the initialisation and the sample order");
ABSL_FLAG(bool, bf16, false, "bf16 training");
ABSL_FLAG(bool, fp16, false, "fp16 training");
ABSL_FLAG(bool, use_cpu, false, "train on the CPU even where there are GPUs");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ClimaX-style forecasting of netCDF fields on the zerotrain engine");
  const bool no_args = argc == 1;
  absl::ParseCommandLine(argc, argv);
  ClimateTrainArgs a;
  a.files = absl::GetFlag(FLAGS_files);
  a.variables = absl::GetFlag(FLAGS_variables);
  a.inspect = absl::GetFlag(FLAGS_inspect);
  a.lead_steps = absl::GetFlag(FLAGS_lead_steps);
  a.train_fraction = absl::GetFlag(FLAGS_train_fraction);
  a.valid_fraction = absl::GetFlag(FLAGS_valid_fraction);
  a.patch = absl::GetFlag(FLAGS_patch);
  a.embed = absl::GetFlag(FLAGS_embed);
  a.depth = absl::GetFlag(FLAGS_depth);
  a.heads = absl::GetFlag(FLAGS_heads);
  a.dropout = absl::GetFlag(FLAGS_dropout);
  a.deepspeed = absl::GetFlag(FLAGS_deepspeed);
  a.output_dir = absl::GetFlag(FLAGS_output_dir);
  a.overwrite_output_dir = absl::GetFlag(FLAGS_overwrite_output_dir);
  a.save_steps = absl::GetFlag(FLAGS_save_steps);
  a.save_total_limit = absl::GetFlag(FLAGS_save_total_limit);
  a.resume_from_checkpoint = absl::GetFlag(FLAGS_resume_from_checkpoint);
  a.peak_tflops = absl::GetFlag(FLAGS_peak_tflops);
  a.epochs = absl::GetFlag(FLAGS_epochs);
  a.batch_size = absl::GetFlag(FLAGS_batch_size);
  a.learning_rate = absl::GetFlag(FLAGS_learning_rate);
  a.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  a.warmup_ratio = absl::GetFlag(FLAGS_warmup_ratio);
  a.max_grad_norm = absl::GetFlag(FLAGS_max_grad_norm);
  a.seed = absl::GetFlag(FLAGS_seed);
  a.bf16 = absl::GetFlag(FLAGS_bf16);
  a.fp16 = absl::GetFlag(FLAGS_fp16);
  a.use_cpu = absl::GetFlag(FLAGS_use_cpu);
  if (no_args) {
    a.overwrite_output_dir = true;
    a.batch_size = 1;  // 12 monthly steps: 7 training samples
    a.epochs = 30;
    std::fprintf(stderr,
                 "climate_train with no arguments: a small ClimaX-style model learns libncarg-data's sample fields "
                 "(tas, uas, vas); --help lists the flags.\n");
  }
  const absl::Status s = zt::science::climate::RunClimateTraining(a);
  if (!s.ok()) {
    std::fprintf(stderr, "climate_train: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
