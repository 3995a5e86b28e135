#include "science/climate/train.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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
#include "science/climate/climax.h"
#include "science/climate/fields.h"
#include "science/climate/lat_weighted.h"

namespace zt::science::climate {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kDefaultFiles[] =
    "/usr/share/ncarg/data/nug/tas_rectilinear_grid_2D.nc,/usr/share/ncarg/data/nug/uas_rectilinear_grid_2D.nc,"
    "/usr/share/ncarg/data/nug/vas_rectilinear_grid_2D.nc";
constexpr char kDefaultVariables[] = "tas,uas,vas";

double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Hours per unit of a CF time axis ("days since ...", "hours since ..."); 0 when unknown.
double HoursPerUnit(const std::string& units) {
  const std::string u = absl::AsciiStrToLower(units);
  if (absl::StartsWith(u, "day")) return 24;
  if (absl::StartsWith(u, "hour")) return 1;
  if (absl::StartsWith(u, "minute")) return 1.0 / 60;
  if (absl::StartsWith(u, "second")) return 1.0 / 3600;
  return 0;
}

double Nan() { return std::numeric_limits<double>::quiet_NaN(); }

nlohmann::json Json(double v) {
  if (std::isnan(v)) return nullptr;
  return std::round(v * 1e6) / 1e6;
}

class Job {
 public:
  explicit Job(const ClimateTrainArgs& a) : a_(a) {}

  absl::Status Run() {
    if (a_.inspect) {
      RETURN_IF_ERROR(Read());
      std::printf("%s", Inspect(fields_).c_str());
      return absl::OkStatus();
    }
    const auto job_start = Clock::now();
    RETURN_IF_ERROR(Setup());
    const auto t0 = Clock::now();
    RETURN_IF_ERROR(Train());
    ASSIGN_OR_RETURN(summary_.totals, engine_->Totals());
    nlohmann::json metrics = {{"train_runtime", std::round(Seconds(t0) * 100) / 100},
                              {"epochs", a_.epochs},
                              {"lead_steps", a_.lead_steps},
                              {"lead_hours", lead_hours_},
                              {"train_samples", train_.size()},
                              {"valid_samples", valid_.size()},
                              {"test_samples", test_.size()}};
    ASSIGN_OR_RETURN(at::Tensor forecast, Forecast(test_));
    ASSIGN_OR_RETURN(nlohmann::json scores, Score(test_, forecast));
    metrics.update(scores);
    Report(metrics);
    if (rank_ == 0) {
      RETURN_IF_ERROR(WriteFileAtomically(out_ + "/metrics.json", metrics.dump(4) + "\n"));
      std::vector<double> valid_times;
      for (std::int64_t t : test_) valid_times.push_back(fields_.time[t + a_.lead_steps]);
      RETURN_IF_ERROR(WriteFields(out_ + "/predictions.nc", fields_, forecast, valid_times));
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

  // The end-of-job summary's metrics (the best validation epoch, each variable's test RMSE
  // beside persistence) and outputs.
  void AddSummaryResults(const nlohmann::json& m) {
    if (best_valid_step_ >= 0) {
      summary_.metrics.emplace_back("best valid RMSE",
                                    absl::StrFormat("%.4f (step %d)", best_valid_, best_valid_step_));
    }
    for (const VariableInfo& v : fields_.variables) {
      summary_.metrics.emplace_back(
          absl::StrCat("test RMSE ", v.label),
          absl::StrFormat("%.4f %s (persistence %.4f, climatology %.4f)", Num(m, absl::StrCat("test_rmse_", v.label)),
                          v.units, Num(m, absl::StrCat("persistence_rmse_", v.label)),
                          Num(m, absl::StrCat("climatology_rmse_", v.label))));
    }
    summary_.outputs.emplace_back(out_ + "/metrics.json", "the metrics");
    summary_.outputs.emplace_back(out_ + "/predictions.nc", "the test forecasts");
    summary_.outputs.emplace_back(out_ + "/checkpoint", "the trained model");
    AddEngineOutputs(*engine_, out_, &summary_);
  }

  absl::Status Read() {
    const bool embedded = a_.files.empty();
    std::vector<std::string> files;
    if (embedded) {
      ASSIGN_OR_RETURN(files, ExpandFiles(kDefaultFiles));
      for (const std::string& f : files) {
        if (!IsRegularFile(f)) {
          return absl::NotFoundError(absl::StrCat("no --files, and the embedded default's ", f,
                                                  " (from the libncarg-data package) is not on this machine: install "
                                                  "libncarg-data or pass --files and --variables"));
        }
      }
    } else {
      std::string list;
      for (absl::string_view item : absl::StrSplit(a_.files, ',')) {
        if (!list.empty()) list += ",";
        list += UserPath(std::string(item));
      }
      ASSIGN_OR_RETURN(files, ExpandFiles(list));
    }
    const std::string vars = a_.variables.empty() && embedded ? kDefaultVariables : a_.variables;
    if (vars.empty())
      return absl::InvalidArgumentError("--variables is required with --files (e.g. tas,uas,vas or t@500)");
    ASSIGN_OR_RETURN(std::vector<FieldSpec> specs, ParseVariables(vars));
    const auto t0 = Clock::now();
    ASSIGN_OR_RETURN(fields_, ReadFields(files, specs));
    if (embedded && !a_.inspect) {
      Say(absl::StrCat("data: no --files; the embedded default: ", kDefaultFiles, " (libncarg-data's sample fields)"));
    }
    const std::string data_line =
        absl::StrFormat("%d variables (%s) on a %d x %d grid, %d time steps", fields_.variables.size(), vars,
                        fields_.lat.size(), fields_.lon.size(), fields_.time.size());
    Say(absl::StrFormat("data: %s, read in %.1f s", data_line, Seconds(t0)));
    summary_.trained.emplace_back("data", absl::StrCat(data_line, embedded ? " (the embedded default)" : ""));
    return absl::OkStatus();
  }

  absl::Status Setup() {
    if (a_.epochs < 0 || a_.batch_size <= 0 || a_.lead_steps <= 0) {
      return absl::InvalidArgumentError("--epochs >= 0, --batch_size > 0 and --lead_steps > 0");
    }
    if (a_.train_fraction <= 0 || a_.valid_fraction < 0 || a_.train_fraction + a_.valid_fraction >= 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--train_fraction %g and --valid_fraction %g must leave a test part (train > 0, valid >= 0, sum < 1)",
          a_.train_fraction, a_.valid_fraction));
    }
    out_ = UserPath(a_.output_dir.empty() ? "climate_output" : a_.output_dir);
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
    RETURN_IF_ERROR(Read());
    RETURN_IF_ERROR(Prepare());
    return SetupModel();
  }

  // Split along time, normalisation and climatology from the training part, lat weights.
  absl::Status Prepare() {
    const auto T = static_cast<std::int64_t>(fields_.time.size());
    const std::int64_t L = a_.lead_steps;
    const auto n_train = static_cast<std::int64_t>(std::floor(T * a_.train_fraction));
    const auto n_valid = static_cast<std::int64_t>(std::floor(T * a_.valid_fraction));
    // A sample starts at t and is scored at t + lead, both inside its part.
    auto samples = [&](std::int64_t begin, std::int64_t end) {
      std::vector<std::int64_t> s;
      for (std::int64_t t = begin; t + L < end; ++t) s.push_back(t);
      return s;
    };
    train_ = samples(0, n_train);
    valid_ = samples(n_train, n_train + n_valid);
    test_ = samples(n_train + n_valid, T);
    if (train_.empty() || test_.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%d time steps with --lead_steps %d and fractions %g / %g leave %d training and %d test samples; pass files "
          "with more time steps",
          T, L, a_.train_fraction, a_.valid_fraction, train_.size(), test_.size()));
    }
    const double step_hours =
        T > 1 ? (fields_.time[1] - fields_.time[0]) *
                    HoursPerUnit(fields_.time_attributes.count("units") > 0 ? fields_.time_attributes.at("units") : "")
              : 0;
    lead_hours_ = step_hours > 0 ? step_hours * L : static_cast<double>(L);
    Say(
        absl::StrFormat("split along time: train t < %d (%d samples), valid (%d), test from t = %d (%d); lead %d "
                        "step(s) = %g h",
                        n_train, train_.size(), valid_.size(), n_train + n_valid, test_.size(), L, lead_hours_));
    const at::Tensor train_part = fields_.values.narrow(0, 0, n_train);  // [t, V, H, W]
    const at::Tensor present = ~at::isnan(train_part);
    const at::Tensor zeroed = at::nan_to_num(train_part, 0.0);
    const at::Tensor count_v = present.sum({0, 2, 3}).to(at::kDouble);
    if ((count_v == 0).any().item<bool>())
      return absl::InvalidArgumentError("a variable has no values in the training part");
    const at::Tensor mean = zeroed.to(at::kDouble).sum({0, 2, 3}) / count_v;
    const at::Tensor var =
        (at::where(present, train_part.to(at::kDouble) - mean.view({1, -1, 1, 1}), at::zeros_like(zeroed, at::kDouble)))
            .pow(2)
            .sum({0, 2, 3}) /
        count_v;
    mean_ = mean.to(at::kFloat);
    std_ = at::where(var > 1e-20, var.sqrt(), at::ones_like(var)).to(at::kFloat);
    // Climatology: the training mean of each grid point (the variable's mean where never present).
    const at::Tensor count_p = present.sum(0);
    climatology_ = at::where(count_p > 0, zeroed.sum(0) / count_p.clamp_min(1),
                             mean_.view({-1, 1, 1}).expand_as(count_p).to(at::kFloat));
    normalised_ = (fields_.values - mean_.view({1, -1, 1, 1})) / std_.view({1, -1, 1, 1});
    ASSIGN_OR_RETURN(lat_weights_, LatitudeWeights(fields_.lat));
    return absl::OkStatus();
  }

  absl::Status SetupModel() {
    ClimaxConfig c;
    c.variables = static_cast<int>(fields_.variables.size());
    c.height = static_cast<int>(fields_.lat.size());
    c.width = static_cast<int>(fields_.lon.size());
    c.patch = a_.patch;
    c.embed = a_.embed;
    c.depth = a_.depth;
    c.heads = a_.heads;
    c.dropout = a_.dropout;
    ASSIGN_OR_RETURN(config_, ClimaxConfig::FromJson(c.ToJson(), "the model flags"));
    model_ = std::make_shared<Climax>(config_, a_.seed);
    std::int64_t params = 0;
    for (const auto& p : model_->parameters()) params += p.numel();
    const std::string model_line =
        absl::StrFormat("ClimaX-style ViT, %d x %d patches of %d, embed %d, %d blocks, %d heads; %.2fM parameters",
                        (c.height + c.patch - 1) / c.patch, (c.width + c.patch - 1) / c.patch, c.patch, c.embed,
                        c.depth, c.heads, params / 1e6);
    Say(absl::StrCat("model: ", model_line));
    summary_.trained.insert(summary_.trained.begin(), {"model", model_line});
    ASSIGN_OR_RETURN(engine_, CreateEpochJobEngine(model_, comm_, EpochArgs(), train_.size(),
                                                   [this](const std::string& line) { Say(line); }));
    summary_.trained.emplace_back("engine", EngineDescription(*engine_));
    return absl::OkStatus();
  }

  Batch BatchOf(const std::vector<std::int64_t>& starts) const {
    const at::Tensor idx = at::tensor(starts, at::kLong);
    const at::Tensor input = normalised_.index_select(0, idx);
    const at::Tensor target = normalised_.index_select(0, idx + a_.lead_steps);
    return {{"input", at::nan_to_num(input, 0.0)},
            {"target", at::nan_to_num(target, 0.0)},
            {"target_mask", ~at::isnan(target)},
            {"lead_hours", at::full({static_cast<std::int64_t>(starts.size())}, lead_hours_)},
            {"lat_weights", at::tensor(lat_weights_, at::kDouble).to(at::kFloat)}};
  }

  absl::Status Train() {
    Say(absl::StrFormat("training: %d samples, %d epochs, batch %d per device x %d rank(s)", train_.size(), a_.epochs,
                        a_.batch_size, world_));
    EpochJobHooks hooks;
    hooks.batch_of = [this](const std::vector<std::int64_t>& items) { return BatchOf(items); };
    hooks.epoch_metrics = [this]() -> absl::StatusOr<std::string> {
      std::string line;
      if (!valid_.empty()) {
        ASSIGN_OR_RETURN(at::Tensor f, Forecast(valid_));
        ASSIGN_OR_RETURN(nlohmann::json m, Score(valid_, f, "valid"));
        if (best_valid_step_ < 0 || Num(m, "valid_rmse") < best_valid_) {
          best_valid_ = Num(m, "valid_rmse");
          best_valid_step_ = engine_->global_steps();
        }
        absl::StrAppend(&line, absl::StrFormat(", valid_rmse %.4f (persistence %.4f)", Num(m, "valid_rmse"),
                                               Num(m, "persistence_rmse")));
      }
      return line;
    };
    hooks.export_files = [this](const std::string& dir) { return SaveCheckpoint(dir); };
    hooks.checkpoint_files = {{"config.json", config_.ToJson()}};
    hooks.say = [this](const std::string& line) { Say(line); };
    return TrainEpochs(*engine_, EpochArgs(), train_, hooks);
  }

  EpochJobArgs EpochArgs() const { return EpochJobArgsFrom(a_, "climate_train", out_, a_.embed); }

  static double Num(const nlohmann::json& m, const std::string& key) {
    return m.contains(key) && m[key].is_number() ? m[key].get<double>() : Nan();
  }

  // The forecasts from the starts `idx`, in physical units [N, V, H, W] on the CPU: split across
  // ranks (batch j on rank j % world) and gathered.
  absl::StatusOr<at::Tensor> Forecast(const std::vector<std::int64_t>& idx) {
    const auto n = static_cast<std::int64_t>(idx.size());
    const std::int64_t bs = a_.batch_size, V = config_.variables, H = config_.height, W = config_.width;
    const std::int64_t batches = (n + bs - 1) / bs;
    const std::int64_t rows = (batches + world_ - 1) / world_ * bs;
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(engine_->device());
    at::Tensor local = at::zeros({rows, V, H, W}, opts);
    RETURN_IF_ERROR(WithWholeParameters(*engine_, *model_, [&] {
      return CallTorch("forecasting", [&] {
        at::NoGradGuard no_grad;
        model_->eval();
        std::int64_t row = 0;
        for (std::int64_t j = rank_; j < batches; j += world_) {
          const std::vector<std::int64_t> chunk(idx.begin() + j * bs, idx.begin() + std::min(n, (j + 1) * bs));
          Batch b = BatchOf(chunk);
          for (auto& [k, v] : b) v = v.to(engine_->device());
          const at::Tensor out = model_->Predict(b).to(at::kFloat);
          local.narrow(0, row, out.size(0)).copy_(out);
          row += static_cast<std::int64_t>(chunk.size());
        }
        model_->train();
      });
    }));
    ASSIGN_OR_RETURN(const at::Tensor all, GatherFromRanks(*comm_, local));
    std::vector<at::Tensor> ordered;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t j = i / bs;
      ordered.push_back(all[j % world_][(j / world_) * bs + i % bs]);
    }
    return at::stack(ordered) * std_.view({1, -1, 1, 1}) + mean_.view({1, -1, 1, 1});
  }

  // Latitude-weighted RMSE and ACC per variable of `forecast` (from the starts `idx`), of
  // persistence (the field at the start) and of climatology, and their means over variables.
  absl::StatusOr<nlohmann::json> Score(const std::vector<std::int64_t>& idx, const at::Tensor& forecast,
                                       const std::string& part = "test") const {
    const at::Tensor starts = at::tensor(idx, at::kLong);
    const at::Tensor truth = fields_.values.index_select(0, starts + a_.lead_steps).contiguous();
    const at::Tensor persistence = fields_.values.index_select(0, starts).contiguous();
    const at::Tensor climatology = climatology_.unsqueeze(0).expand_as(truth).contiguous();
    const std::int64_t N = truth.size(0), H = truth.size(2), W = truth.size(3);
    nlohmann::json m;
    struct Kind {
      std::string name;
      at::Tensor pred;
    };
    for (const Kind& k : {Kind{part, forecast}, Kind{"persistence", persistence}, Kind{"climatology", climatology}}) {
      double rmse_sum = 0, acc_sum = 0;
      int rmse_n = 0, acc_n = 0;
      for (std::size_t v = 0; v < fields_.variables.size(); ++v) {
        const at::Tensor p = at::nan_to_num(k.pred.select(1, v).contiguous(), 0.0).contiguous();
        const at::Tensor t = truth.select(1, v).contiguous();
        const at::Tensor c = climatology_.select(0, v).contiguous();
        absl::Span<const float> ps(p.data_ptr<float>(), p.numel()), ts(t.data_ptr<float>(), t.numel()),
            cs(c.data_ptr<float>(), c.numel());
        ASSIGN_OR_RETURN(double rmse, LatWeightedRmse(ps, ts, lat_weights_, N, H, W));
        ASSIGN_OR_RETURN(double acc, LatWeightedAcc(ps, ts, cs, lat_weights_, N, H, W));
        const std::string& label = fields_.variables[v].label;
        m[absl::StrCat(k.name, "_rmse_", label)] = Json(rmse);
        if (k.name != "climatology") m[absl::StrCat(k.name, "_acc_", label)] = Json(acc);
        if (!std::isnan(rmse)) rmse_sum += rmse, ++rmse_n;
        if (!std::isnan(acc)) acc_sum += acc, ++acc_n;
      }
      m[absl::StrCat(k.name, "_rmse")] = rmse_n > 0 ? Json(rmse_sum / rmse_n) : nlohmann::json();
      if (k.name != "climatology")
        m[absl::StrCat(k.name, "_acc")] = acc_n > 0 ? Json(acc_sum / acc_n) : nlohmann::json();
    }
    return m;
  }

  void Report(const nlohmann::json& m) const {
    for (const VariableInfo& v : fields_.variables) {
      auto f = [&](const std::string& kind, const char* what) {
        return Num(m, absl::StrCat(kind, "_", what, "_", v.label));
      };
      Say(
          absl::StrFormat("test %s (%s), lead %g h: lat-weighted RMSE %.4f (persistence %.4f, climatology %.4f), ACC "
                          "%.4f (persistence %.4f)",
                          v.label, v.units, lead_hours_, f("test", "rmse"), f("persistence", "rmse"),
                          f("climatology", "rmse"), f("test", "acc"), f("persistence", "acc")));
    }
  }

  absl::Status SaveCheckpoint(const std::string& dir) {
    return WithWholeParameters(*engine_, *model_, [&]() -> absl::Status {
      if (rank_ != 0) return absl::OkStatus();
      absl::Status s = MakeDirs(dir);
      if (s.ok()) s = WriteParameters(*model_, dir + "/model.safetensors");
      if (s.ok()) s = WriteFileAtomically(dir + "/config.json", config_.ToJson());
      std::vector<std::string> labels;
      for (const VariableInfo& v : fields_.variables) labels.push_back(v.label);
      const at::Tensor mean = mean_.to(at::kDouble).contiguous(), std = std_.to(at::kDouble).contiguous();
      nlohmann::json norm = {
          {"variables", labels},
          {"mean", std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel())},
          {"std", std::vector<double>(std.data_ptr<double>(), std.data_ptr<double>() + std.numel())},
          {"lead_steps", a_.lead_steps},
          {"lead_hours", lead_hours_}};
      if (s.ok()) s = WriteFileAtomically(dir + "/normalization.json", norm.dump(2) + "\n");
      return s;
    });
  }

  const ClimateTrainArgs a_;
  std::string out_;
  int rank_ = 0, world_ = 1;
  std::shared_ptr<Communicator> comm_;
  Fields fields_;
  std::vector<std::int64_t> train_, valid_, test_;  // sample starts
  at::Tensor mean_, std_;                           // [V] from the training part
  at::Tensor climatology_;                          // [V, H, W]
  at::Tensor normalised_;                           // [T, V, H, W], NaN where missing
  std::vector<double> lat_weights_;
  double lead_hours_ = 0;
  ClimaxConfig config_;
  std::shared_ptr<Climax> model_;
  std::unique_ptr<Engine> engine_;
  JobSummary summary_{"climate_train"};
  double best_valid_ = 0;
  std::int64_t best_valid_step_ = -1;
};

}  // namespace

absl::Status RunClimateTraining(const ClimateTrainArgs& args) { return Job(args).Run(); }

}  // namespace zt::science::climate
