#include "science/molecule/train.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/comm/communicator.h"
#include "core/comm/rank_env.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/engine/epoch_job.h"
#include "core/engine/job_summary.h"
#include "core/engine/job_util.h"
#include "core/monitor/step_line.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"
#include "science/molecule/data.h"
#include "science/molecule/metrics.h"
#include "science/molecule/model.h"

namespace zt::science::molecule {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kDefaultSmi[] = "/usr/share/RDKit/Contrib/FreeWilson/data/CHEMBL2321810.smi";
constexpr char kDefaultActivity[] = "/usr/share/RDKit/Contrib/FreeWilson/data/CHEMBL2321810_act.csv";

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// What the model predicts, back in the targets' units (regression) or as probabilities.
struct Predictions {
  std::vector<std::vector<double>> values;  // [example][target]
};

// Per-target standardisation of regression targets (training split statistics).
struct Scaling {
  std::vector<double> mean, std;
};

class Job {
 public:
  explicit Job(const MoleculeTrainArgs& a) : a_(a) {}

  absl::Status Run() {
    const auto job_start = Clock::now();
    RETURN_IF_ERROR(Setup());
    const auto t0 = Clock::now();
    RETURN_IF_ERROR(Train());
    const double train_seconds = Seconds(t0);
    ASSIGN_OR_RETURN(summary_.totals, engine_->Totals());
    nlohmann::json metrics = {{"train_runtime", std::round(train_seconds * 100) / 100},
                              {"epochs", a_.epochs},
                              {"task", classification_ ? "classification" : "regression"},
                              {"split", a_.split},
                              {"train_samples", split_.train.size()},
                              {"valid_samples", split_.valid.size()},
                              {"test_samples", split_.test.size()}};
    if (!split_.valid.empty()) {
      ASSIGN_OR_RETURN(Predictions v, Predict(split_.valid));
      metrics.update(Metrics("valid", split_.valid, v));
    }
    ASSIGN_OR_RETURN(Predictions p, Predict(split_.test));
    metrics.update(Metrics("test", split_.test, p));
    metrics.update(Baseline(split_.test));
    Report(metrics);
    if (rank_ == 0) {
      RETURN_IF_ERROR(WriteFileAtomically(out_ + "/metrics.json", metrics.dump(4) + "\n"));
      RETURN_IF_ERROR(WritePredictions(p));
    }
    RETURN_IF_ERROR(SaveCheckpoint(out_ + "/checkpoint"));
    summary_.wall_seconds = Seconds(job_start);
    AddSummaryResults(metrics);
    if (rank_ == 0) monitor::PrintLine(FormatJobSummary(summary_));
    RETURN_IF_ERROR(engine_->Shutdown());
    return comm_->Shutdown();
  }

 private:
  void Say(const std::string& line) const {
    if (rank_ == 0) monitor::PrintLine(line);
  }

  // The end-of-job summary's metrics (the best validation epoch, the test split beside its
  // baseline) and outputs.
  void AddSummaryResults(const nlohmann::json& m) {
    if (best_valid_step_ >= 0) {
      summary_.metrics.emplace_back(classification_ ? "best valid ROC-AUC" : "best valid RMSE",
                                    absl::StrFormat("%.4f (step %d)", best_valid_, best_valid_step_));
    }
    if (classification_) {
      summary_.metrics.emplace_back(
          "test ROC-AUC", absl::StrFormat("%.4f (baseline %.4f)", Num(m, "test_roc_auc"), Num(m, "baseline_roc_auc")));
    } else {
      summary_.metrics.emplace_back("test RMSE", absl::StrFormat("%.4f (baseline %.4f), R² %.4f", Num(m, "test_rmse"),
                                                                 Num(m, "baseline_rmse"), Num(m, "test_r2")));
    }
    summary_.outputs.emplace_back(out_ + "/metrics.json", "the metrics");
    summary_.outputs.emplace_back(out_ + "/predictions.csv", "the test split's predictions");
    summary_.outputs.emplace_back(out_ + "/checkpoint", "the trained model");
    AddEngineOutputs(*engine_, out_, &summary_);
  }

  absl::Status Setup() {
    if (a_.epochs < 0 || a_.batch_size <= 0) return absl::InvalidArgumentError("--epochs >= 0 and --batch_size > 0");
    if (a_.task != "auto" && a_.task != "regression" && a_.task != "classification") {
      return absl::InvalidArgumentError(
          absl::StrCat("--task ", a_.task, " is not one of auto, regression, classification"));
    }
    if (a_.split != "random" && a_.split != "scaffold") {
      return absl::InvalidArgumentError(absl::StrCat("--split ", a_.split, " is not one of random, scaffold"));
    }
    if (a_.train_fraction <= 0 || a_.valid_fraction < 0 || a_.train_fraction + a_.valid_fraction >= 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--train_fraction %g and --valid_fraction %g must leave a test part (train > 0, valid >= 0, sum < 1)",
          a_.train_fraction, a_.valid_fraction));
    }
    out_ = UserPath(a_.output_dir.empty() ? "molecule_output" : a_.output_dir);
    ASSIGN_OR_RETURN(RankInfo me, RankInfoFromEnv());
    rank_ = me.rank;
    if (IsNonEmptyDirectory(out_) && !a_.overwrite_output_dir && a_.resume_from_checkpoint.empty()) {
      return absl::AlreadyExistsError(
          absl::StrCat("output directory ", out_, " already exists and is not empty; pass --overwrite_output_dir"));
    }
    if (rank_ == 0) RETURN_IF_ERROR(MakeDirs(out_));
    ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, CreateJobCommunicator(me, a_.use_cpu));
    comm_ = std::move(comm);
    world_ = comm_->world_size();
    RETURN_IF_ERROR(LoadData());
    return SetupModel();
  }

  absl::Status LoadData() {
    FeaturizeOptions f;
    f.conformers = a_.conformers;
    f.seed = static_cast<int>(a_.seed);
    f.max_atoms = a_.max_atoms;
    f.threads = a_.threads;
    std::string path = a_.train_file.empty() ? "" : UserPath(a_.train_file);
    std::vector<std::string> targets = a_.target_columns;
    if (path.empty()) {
      if (!IsRegularFile(kDefaultSmi) || !IsRegularFile(kDefaultActivity)) {
        return absl::NotFoundError(absl::StrCat("no --train_file, and the embedded default (", kDefaultSmi, " with ",
                                                kDefaultActivity,
                                                ", from the rdkit-data package) is not on this machine: install "
                                                "rdkit-data or pass --train_file"));
      }
      Say(absl::StrCat("data: no --train_file; the embedded default: ", kDefaultSmi,
                       " (CHEMBL2321810 activities from rdkit-data) with ", kDefaultActivity));
      if (targets.empty()) targets = {"Act"};
      ASSIGN_OR_RETURN(data_, ReadSmi(kDefaultSmi, kDefaultActivity, a_.name_column, targets, f));
    } else if (!a_.activity_file.empty()) {
      if (targets.empty()) return absl::InvalidArgumentError("--activity_file needs --target_columns");
      ASSIGN_OR_RETURN(data_, ReadSmi(path, UserPath(a_.activity_file), a_.name_column, targets, f));
    } else {
      if (targets.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--target_columns is required with --train_file ", path, " (comma-separated column names)"));
      }
      ASSIGN_OR_RETURN(data_, ReadMolecules(path, a_.smiles_column, targets, f));
    }
    Say(absl::StrCat("data: ", data_.description));
    for (const std::string& e : data_.first_errors) Say(absl::StrCat("  skipped: ", e));
    if (data_.mols.size() < 10) {
      return absl::InvalidArgumentError(
          absl::StrCat("only ", data_.mols.size(), " valid molecules: too few to split into train/valid/test"));
    }
    // Task: classification when every present target is 0 or 1.
    bool binary = true;
    for (const MolGraph& m : data_.mols) {
      for (float v : m.targets) binary = binary && (std::isnan(v) || v == 0.0f || v == 1.0f);
    }
    classification_ = a_.task == "classification" || (a_.task == "auto" && binary);
    if (classification_ && !binary) {
      return absl::InvalidArgumentError("--task classification needs targets that are 0 or 1");
    }
    split_ = a_.split == "scaffold" ? ScaffoldSplit(data_.mols, a_.train_fraction, a_.valid_fraction, a_.seed)
                                    : RandomSplit(static_cast<std::int64_t>(data_.mols.size()), a_.train_fraction,
                                                  a_.valid_fraction, a_.seed);
    if (split_.train.empty() || split_.test.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("the ", a_.split, " split left train ", split_.train.size(),
                                                     " and test ", split_.test.size(), " molecules"));
    }
    Say(absl::StrFormat("split (%s, seed %d): train %d, valid %d, test %d; task: %s of %s", a_.split, a_.seed,
                        split_.train.size(), split_.valid.size(), split_.test.size(),
                        classification_ ? "classification" : "regression", absl::StrJoin(data_.target_names, ", ")));
    // Standardise regression targets on the training split; the model learns the scaled values.
    const std::size_t T = data_.target_names.size();
    truth_.resize(data_.mols.size());
    for (std::size_t i = 0; i < data_.mols.size(); ++i)
      truth_[i].assign(data_.mols[i].targets.begin(), data_.mols[i].targets.end());
    scaling_.mean.assign(T, 0.0);
    scaling_.std.assign(T, 1.0);
    if (!classification_) {
      for (std::size_t t = 0; t < T; ++t) {
        double sum = 0, sq = 0, n = 0;
        for (std::int64_t i : split_.train) {
          const double v = truth_[i][t];
          if (std::isnan(v)) continue;
          sum += v;
          sq += v * v;
          n += 1;
        }
        if (n == 0)
          return absl::InvalidArgumentError(
              absl::StrCat("target ", data_.target_names[t], " has no values in the training split"));
        scaling_.mean[t] = sum / n;
        const double var = sq / n - scaling_.mean[t] * scaling_.mean[t];
        scaling_.std[t] = var > 1e-12 ? std::sqrt(var) : 1.0;
      }
      for (MolGraph& m : data_.mols) {
        for (std::size_t t = 0; t < T; ++t)
          m.targets[t] = static_cast<float>((m.targets[t] - scaling_.mean[t]) / scaling_.std[t]);
      }
    }
    return absl::OkStatus();
  }

  absl::Status SetupModel() {
    MoleculeModelConfig c;
    c.layers = a_.layers;
    c.hidden = a_.hidden;
    c.heads = a_.heads;
    c.ffn = a_.ffn;
    c.dropout = a_.dropout;
    c.targets = static_cast<int>(data_.target_names.size());
    c.classification = classification_;
    c.gaussians = a_.conformers ? 64 : 0;
    ASSIGN_OR_RETURN(config_, MoleculeModelConfig::FromJson(c.ToJson(), "the model flags"));
    model_ = std::make_shared<MoleculeModel>(config_, a_.seed);
    std::int64_t params = 0;
    for (const auto& p : model_->parameters()) params += p.numel();
    const std::string model_line = absl::StrFormat(
        "graph transformer, %d layers, hidden %d, %d heads, pair bias from paths and bonds%s; "
        "%.2fM parameters",
        c.layers, c.hidden, c.heads, c.gaussians > 0 ? " and 3D distances" : "", params / 1e6);
    Say(absl::StrCat("model: ", model_line));
    summary_.trained.emplace_back("model", model_line);
    summary_.trained.emplace_back("data", data_.description);

    ASSIGN_OR_RETURN(engine_, CreateEpochJobEngine(model_, comm_, EpochArgs(), split_.train.size(),
                                                   [this](const std::string& line) { Say(line); }));
    summary_.trained.emplace_back("engine", EngineDescription(*engine_));
    return absl::OkStatus();
  }

  Batch BatchOf(const std::vector<std::int64_t>& idx) const {
    std::vector<const MolGraph*> g;
    g.reserve(idx.size());
    for (std::int64_t i : idx) g.push_back(&data_.mols[i]);
    return MakeBatch(g);
  }

  absl::Status Train() {
    const auto n = static_cast<std::int64_t>(split_.train.size());
    Say(absl::StrFormat("training: %d molecules, %d epochs, batch %d per device x %d rank(s)", n, a_.epochs,
                        a_.batch_size, world_));
    EpochJobHooks hooks;
    hooks.batch_of = [this](const std::vector<std::int64_t>& items) { return BatchOf(items); };
    hooks.epoch_metrics = [this]() -> absl::StatusOr<std::string> {
      std::string line;
      if (!split_.valid.empty()) {
        ASSIGN_OR_RETURN(Predictions v, Predict(split_.valid));
        const nlohmann::json m = Metrics("valid", split_.valid, v);
        const double score = Num(m, classification_ ? "valid_roc_auc" : "valid_rmse");
        if (best_valid_step_ < 0 || (classification_ ? score > best_valid_ : score < best_valid_)) {
          best_valid_ = score;
          best_valid_step_ = engine_->global_steps();
        }
        absl::StrAppend(&line, classification_ ? absl::StrFormat(", valid_roc_auc %.4f", Num(m, "valid_roc_auc"))
                                               : absl::StrFormat(", valid_rmse %.4f, valid_r2 %.4f",
                                                                 Num(m, "valid_rmse"), Num(m, "valid_r2")));
      }
      return line;
    };
    hooks.export_files = [this](const std::string& dir) { return SaveCheckpoint(dir); };
    hooks.checkpoint_files = {{"config.json", config_.ToJson()}};
    hooks.say = [this](const std::string& line) { Say(line); };
    return TrainEpochs(*engine_, EpochArgs(), split_.train, hooks);
  }

  EpochJobArgs EpochArgs() const { return EpochJobArgsFrom(a_, "molecule_train", out_, a_.hidden); }

  // Predictions for `idx`, split across ranks (batch j on rank j % world) and gathered, in
  // the targets' units (regression) or as probabilities (classification).
  absl::StatusOr<Predictions> Predict(const std::vector<std::int64_t>& idx) {
    const auto n = static_cast<std::int64_t>(idx.size());
    const std::int64_t bs = a_.batch_size, T = config_.targets;
    const std::int64_t batches = (n + bs - 1) / bs;
    const std::int64_t rows = (batches + world_ - 1) / world_ * bs;
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(engine_->device());
    at::Tensor local = at::zeros({rows, T}, opts);
    RETURN_IF_ERROR(WithWholeParameters(*engine_, *model_, [&] {
      return CallTorch("prediction", [&] {
        at::NoGradGuard no_grad;
        model_->eval();
        std::int64_t row = 0;
        for (std::int64_t j = rank_; j < batches; j += world_) {
          const std::vector<std::int64_t> chunk(idx.begin() + j * bs, idx.begin() + std::min(n, (j + 1) * bs));
          Batch b = BatchOf(chunk);
          for (auto& [k, v] : b) v = v.to(engine_->device());
          const at::Tensor out = model_->Predict(b);
          local.narrow(0, row, out.size(0)).copy_(out);
          row += static_cast<std::int64_t>(chunk.size());
        }
        model_->train();
      });
    }));
    ASSIGN_OR_RETURN(at::Tensor all, GatherFromRanks(*comm_, local));
    all = all.to(at::kDouble).contiguous();
    const auto* p = all.data_ptr<double>();
    Predictions out;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t j = i / bs, row = (j / world_) * bs + i % bs;
      std::vector<double>& v = out.values.emplace_back(T);
      for (std::int64_t t = 0; t < T; ++t) {
        const double raw = p[((j % world_) * rows + row) * T + t];
        v[t] = classification_ ? 1.0 / (1.0 + std::exp(-raw)) : raw * scaling_.std[t] + scaling_.mean[t];
      }
    }
    return out;
  }

  // "<part>_rmse" ... averaged over the targets, and per target ("<part>_rmse_<name>") when
  // there are several.
  nlohmann::json Metrics(const std::string& part, const std::vector<std::int64_t>& idx, const Predictions& p) const {
    return Score(part, idx, [&](std::size_t i, std::size_t t) { return p.values[i][t]; });
  }

  // The trivial baseline on the test split: the training mean (regression) or a constant
  // score (classification: the majority class, AUC 0.5).
  nlohmann::json Baseline(const std::vector<std::int64_t>& idx) const {
    const std::size_t T = data_.target_names.size();
    std::vector<double> mean(T, 0.0);
    for (std::size_t t = 0; t < T; ++t) {
      double sum = 0, n = 0;
      for (std::int64_t i : split_.train) {
        if (!std::isnan(truth_[i][t])) {
          sum += truth_[i][t];
          n += 1;
        }
      }
      mean[t] = n > 0 ? sum / n : 0.0;
    }
    return Score("baseline", idx, [&](std::size_t, std::size_t t) { return mean[t]; });
  }

  template <typename F>
  nlohmann::json Score(const std::string& part, const std::vector<std::int64_t>& idx, F predicted) const {
    nlohmann::json m;
    const std::size_t T = data_.target_names.size();
    std::vector<std::string> keys =
        classification_ ? std::vector<std::string>{"roc_auc"} : std::vector<std::string>{"rmse", "mae", "r2"};
    std::vector<double> sums(keys.size(), 0.0);
    std::vector<int> counts(keys.size(), 0);
    for (std::size_t t = 0; t < T; ++t) {
      std::vector<double> pred, truth;
      for (std::size_t i = 0; i < idx.size(); ++i) {
        pred.push_back(predicted(i, t));
        truth.push_back(truth_[idx[i]][t]);
      }
      std::vector<double> values;
      if (classification_) {
        values = {RocAuc(pred, truth)};
      } else {
        const RegressionMetrics r = Regression(pred, truth);
        values = {r.rmse, r.mae, r.r2};
      }
      for (std::size_t k = 0; k < keys.size(); ++k) {
        if (T > 1) m[absl::StrCat(part, "_", keys[k], "_", data_.target_names[t])] = Json(values[k]);
        if (!std::isnan(values[k])) {
          sums[k] += values[k];
          ++counts[k];
        }
      }
    }
    for (std::size_t k = 0; k < keys.size(); ++k) {
      m[absl::StrCat(part, "_", keys[k])] = counts[k] > 0 ? Json(sums[k] / counts[k]) : nlohmann::json();
    }
    return m;
  }

  static nlohmann::json Json(double v) {
    if (std::isnan(v)) return nullptr;
    return std::round(v * 1e6) / 1e6;
  }

  // A metric's value; NaN where it is null (nothing to measure, e.g. AUC of one class).
  static double Num(const nlohmann::json& m, const char* key) {
    return m.contains(key) && m[key].is_number() ? m[key].get<double>() : std::numeric_limits<double>::quiet_NaN();
  }

  void Report(const nlohmann::json& m) const {
    auto f = [&](const char* key) { return Num(m, key); };
    if (classification_) {
      Say(absl::StrFormat("test: ROC-AUC %.4f (baseline, the majority class: %.4f)", f("test_roc_auc"),
                          f("baseline_roc_auc")));
    } else {
      Say(absl::StrFormat("test: RMSE %.4f (baseline, the training mean: %.4f), MAE %.4f (%.4f), R² %.4f (%.4f)",
                          f("test_rmse"), f("baseline_rmse"), f("test_mae"), f("baseline_mae"), f("test_r2"),
                          f("baseline_r2")));
    }
  }

  static std::string CsvField(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) {
      if (c == '"') q += '"';
      q += c;
    }
    return q + "\"";
  }

  absl::Status WritePredictions(const Predictions& p) const {
    std::string csv = "smiles,name";
    for (const std::string& t : data_.target_names) absl::StrAppend(&csv, ",", CsvField(t), ",", CsvField(t + "_pred"));
    csv += "\n";
    for (std::size_t i = 0; i < split_.test.size(); ++i) {
      const MolGraph& m = data_.mols[split_.test[i]];
      absl::StrAppend(&csv, CsvField(m.smiles), ",", CsvField(m.name));
      for (std::size_t t = 0; t < data_.target_names.size(); ++t) {
        const double truth = truth_[split_.test[i]][t];
        absl::StrAppend(&csv, ",", std::isnan(truth) ? "" : absl::StrFormat("%.6g", truth), ",",
                        absl::StrFormat("%.6g", p.values[i][t]));
      }
      csv += "\n";
    }
    return WriteFileAtomically(out_ + "/predictions.csv", csv);
  }

  absl::Status SaveCheckpoint(const std::string& dir) {
    return WithWholeParameters(*engine_, *model_, [&]() -> absl::Status {
      if (rank_ != 0) return absl::OkStatus();
      absl::Status s = MakeDirs(dir);
      if (s.ok()) s = WriteParameters(*model_, dir + "/model.safetensors");
      if (s.ok()) s = WriteFileAtomically(dir + "/config.json", config_.ToJson());
      nlohmann::json targets = {{"names", data_.target_names},
                                {"task", classification_ ? "classification" : "regression"},
                                {"mean", scaling_.mean},
                                {"std", scaling_.std}};
      if (s.ok()) s = WriteFileAtomically(dir + "/targets.json", targets.dump(2) + "\n");
      return s;
    });
  }

  const MoleculeTrainArgs a_;
  std::string out_;
  int rank_ = 0, world_ = 1;
  std::shared_ptr<Communicator> comm_;
  Dataset data_;
  std::vector<std::vector<double>> truth_;  // the targets as read, per molecule
  Split split_;
  Scaling scaling_;
  bool classification_ = false;
  MoleculeModelConfig config_;
  std::shared_ptr<MoleculeModel> model_;
  std::unique_ptr<Engine> engine_;
  JobSummary summary_{"molecule_train"};
  double best_valid_ = 0;
  std::int64_t best_valid_step_ = -1;
};

}  // namespace

absl::Status RunMoleculeTraining(const MoleculeTrainArgs& args) { return Job(args).Run(); }

}  // namespace zt::science::molecule
