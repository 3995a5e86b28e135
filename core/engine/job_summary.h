// The summary every training job prints when it ends: what was trained, how long and how fast,
// the best metrics, and where the outputs are.
//
//   zt::JobSummary s;
//   s.job = "t5_translate";
//   s.trained = {{"model", "t5-small, 60.5M parameters"}, {"data", "wmt16 ro-en, 610k pairs"}};
//   ASSIGN_OR_RETURN(s.totals, engine->Totals());            // every rank
//   s.metrics = {{"best eval_loss", "1.234 (step 400)"}, {"eval BLEU", "27.1"}};
//   s.outputs = {{out_dir + "/model.safetensors", "the trained model"}};
//   if (rank == 0) zt::monitor::PrintLine(zt::FormatJobSummary(s));
#ifndef ZEROTRAIN_CORE_ENGINE_JOB_SUMMARY_H_
#define ZEROTRAIN_CORE_ENGINE_JOB_SUMMARY_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/engine/engine.h"

namespace zt {

struct JobSummary {
  using Rows = std::vector<std::pair<std::string, std::string>>;
  std::string job;
  Rows trained;                          // (what, description): model, data, engine
  std::optional<TrainingTotals> totals;  // absent: no training ran
  Rows metrics;                          // (name, value)
  Rows outputs;                          // (path, what it holds)
  double wall_seconds = -1;              // the whole job, set-up and evaluation included
};

// A framed block of "key: value" lines:
//   ===== t5_translate: summary =====
//   model        t5-small, 60.5M parameters
//   trained      400 steps, 12800 samples, 3m12s in training steps (2 ranks)
//   throughput   66.7 samples/s, 12.3k tokens/s, 4.56 TFLOPS/rank, MFU 0.5%
//   memory       GPU peak 12.3 GiB, host RSS 3.1 GiB
//   ...
std::string FormatJobSummary(const JobSummary& s);

// "ZeRO stage 2, 2 rank(s), bf16, device cuda:0".
std::string EngineDescription(const Engine& engine);
// Output rows for what the engine's config writes (the tensorboard and csv_monitor directories)
// and for the newest of the job's checkpoint-N directories in output_dir.
void AddEngineOutputs(const Engine& engine, const std::string& output_dir, JobSummary* s);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ENGINE_JOB_SUMMARY_H_
