#include "nlp/translate/translate.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/comm/communicator.h"
#include "core/comm/rank_env.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/engine/job_checkpoint.h"
#include "core/engine/job_summary.h"
#include "core/engine/job_util.h"
#include "core/monitor/monitor.h"
#include "core/monitor/step_line.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"
#include "nlp/data/sentencepiece.h"
#include "nlp/data/sentencepiece_trainer.h"
#include "nlp/eval/bleu.h"
#include "nlp/t5/t5_config.h"
#include "nlp/t5/t5_model.h"
#include "nlp/translate/data.h"

namespace zt::nlp {
namespace {

using Clock = std::chrono::steady_clock;

double Round4(double v) { return std::round(v * 1e4) / 1e4; }

// The small model of the no-argument run.
T5Config DemoConfig(std::int64_t vocab) {
  T5Config c;
  c.vocab_size = vocab;
  c.d_model = 128;
  c.d_kv = 32;
  c.num_heads = 4;
  c.d_ff = 512;
  c.num_layers = c.num_decoder_layers = 2;
  c.dropout_rate = 0.1;
  return c;
}

absl::StatusOr<nlohmann::json> SchedulerFor(const std::string& type) {
  if (type == "linear") {
    return nlohmann::json{{"type", "WarmupDecayLR"},
                          {"params",
                           {{"warmup_min_lr", 0},
                            {"warmup_max_lr", "auto"},
                            {"warmup_num_steps", "auto"},
                            {"total_num_steps", "auto"},
                            {"warmup_type", "linear"}}}};
  }
  if (type == "constant_with_warmup") {
    return nlohmann::json{
        {"type", "WarmupLR"},
        {"params",
         {{"warmup_min_lr", 0}, {"warmup_max_lr", "auto"}, {"warmup_num_steps", "auto"}, {"warmup_type", "linear"}}}};
  }
  if (type == "cosine") {
    return nlohmann::json{{"type", "WarmupCosineLR"},
                          {"params",
                           {{"total_num_steps", "auto"},
                            {"warmup_num_steps", "auto"},
                            {"warmup_min_ratio", 0},
                            {"cos_min_ratio", 0},
                            {"warmup_type", "linear"}}}};
  }
  if (type == "constant") return nlohmann::json();
  return absl::InvalidArgumentError(
      absl::StrCat("--lr_scheduler_type ", type, " is not supported (linear, cosine, constant, constant_with_warmup)"));
}

struct EvalOutput {
  double loss = 0;
  bool generated = false;
  double bleu = 0, gen_len = 0;
  std::vector<std::string> predictions;
  double seconds = 0;
  std::int64_t batches = 0;
};

class Job {
 public:
  explicit Job(const TranslateArgs& a) : a_(a) {}

  absl::Status Run() {
    const auto job_start = Clock::now();
    RETURN_IF_ERROR(Setup());
    if (a_.demo) {
      ASSIGN_OR_RETURN(EvalOutput before, Evaluate(val_, /*generate=*/true));
      Say(absl::StrFormat("before training: eval_loss %.4f, BLEU %.2f", before.loss, before.bleu));
      Samples(before, 3);
    }
    nlohmann::json all = nlohmann::json::object();
    if (a_.do_train) {
      ASSIGN_OR_RETURN(nlohmann::json m, Train());
      ASSIGN_OR_RETURN(summary_.totals, engine_->Totals());
      all.update(m);
      RETURN_IF_ERROR(SaveResults("train", m));
      RETURN_IF_ERROR(SaveModel(out_));
    }
    if (a_.do_eval) {
      ASSIGN_OR_RETURN(EvalOutput e, Evaluate(val_, a_.predict_with_generate));
      nlohmann::json m = Metrics("eval", e, data_.validation.size());
      all.update(m);
      RETURN_IF_ERROR(SaveResults("eval", m));
      Say(absl::StrCat("eval: ", m.dump()));
      if (a_.demo) Samples(e, 5);
    }
    if (a_.do_predict) {
      ASSIGN_OR_RETURN(EvalOutput p, Evaluate(test_, a_.predict_with_generate));
      nlohmann::json m = Metrics("predict", p, data_.test.size());
      all.update(m);
      RETURN_IF_ERROR(SaveResults("predict", m));
      if (p.generated && rank_ == 0) {
        RETURN_IF_ERROR(
            WriteFileAtomically(out_ + "/generated_predictions.txt", absl::StrJoin(p.predictions, "\n") + "\n"));
      }
      Say(absl::StrCat("predict: ", m.dump()));
    }
    if (rank_ == 0 && !all.empty())
      RETURN_IF_ERROR(WriteFileAtomically(out_ + "/all_results.json", all.dump(4) + "\n"));
    summary_.wall_seconds = std::chrono::duration<double>(Clock::now() - job_start).count();
    AddSummaryResults(all);
    if (rank_ == 0) monitor::PrintLine(FormatJobSummary(summary_));
    RETURN_IF_ERROR(engine_->Shutdown());
    return comm_->Shutdown();
  }

 private:
  void Say(const std::string& line) const {
    if (rank_ == 0) monitor::PrintLine(line);
  }

  absl::Status Setup() {
    if (a_.output_dir.empty()) return absl::InvalidArgumentError("--output_dir is required");
    if (!a_.do_train && !a_.do_eval && !a_.do_predict) {
      return absl::InvalidArgumentError("nothing to do: pass --do_train, --do_eval and/or --do_predict");
    }
    if (a_.source_lang.empty() || a_.target_lang.empty()) {
      return absl::InvalidArgumentError("--source_lang and --target_lang are required (e.g. en, ro)");
    }
    if (a_.eval_strategy != "no" && a_.eval_strategy != "steps" && a_.eval_strategy != "epoch") {
      return absl::InvalidArgumentError(
          absl::StrCat("--eval_strategy ", a_.eval_strategy, " is not one of no, steps, epoch"));
    }
    out_ = UserPath(a_.output_dir);
    ASSIGN_OR_RETURN(RankInfo me, RankInfoFromEnv());
    rank_ = me.rank;
    if (a_.do_train && IsNonEmptyDirectory(out_) && !a_.overwrite_output_dir && a_.resume_from_checkpoint.empty()) {
      return absl::AlreadyExistsError(absl::StrCat("Output directory (", out_,
                                                   ") already exists and is not empty. Use --overwrite_output_dir "
                                                   "to overcome."));
    }
    if (rank_ == 0) RETURN_IF_ERROR(MakeDirs(out_));
    ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, CreateJobCommunicator(me, a_.use_cpu));
    comm_ = std::move(comm);
    world_ = comm_->world_size();

    ASSIGN_OR_RETURN(data_, LoadTranslationData(a_));
    Say(absl::StrCat("data: ", data_.description));
    RETURN_IF_ERROR(SetupModelAndTokenizer());
    prefix_ = a_.source_prefix_set ? a_.source_prefix : DefaultSourcePrefix(a_.source_lang, a_.target_lang);
    if (!a_.source_prefix_set) Say(absl::StrCat("source prefix (T5's default): \"", prefix_, "\""));
    const std::int64_t val_max = a_.val_max_target_length > 0 ? a_.val_max_target_length : a_.max_target_length;
    train_ = Tokenize(*sp_, data_.train, prefix_, a_.max_source_length, a_.max_target_length);
    val_ = Tokenize(*sp_, data_.validation, prefix_, a_.max_source_length, val_max);
    test_ = Tokenize(*sp_, data_.test, prefix_, a_.max_source_length, val_max);
    gen_max_ = a_.generation_max_length > 0 ? a_.generation_max_length : val_max;
    return SetupEngine();
  }

  absl::Status SetupModelAndTokenizer() {
    const std::string src = UserPath(a_.model_name_or_path);
    std::string model_dir;
    if (a_.demo && a_.model_name_or_path.empty()) {
      // Filled once the tokenizer is known.
    } else if (IsDirectory(src)) {
      model_dir = src;
      ASSIGN_OR_RETURN(config_, ReadT5Config(src + "/config.json"));
    } else {
      ASSIGN_OR_RETURN(config_, T5ConfigForName(a_.model_name_or_path));
      Say(absl::StrCat(a_.model_name_or_path,
                       ": no pretrained weights on this machine (no internet); initialising that architecture at "
                       "random (seed ",
                       a_.seed, ")"));
    }
    // Tokenizer: --tokenizer_name, the model's spiece.model, or one trained here.
    std::string sp_path;
    if (!a_.tokenizer_name.empty()) {
      const std::string t = UserPath(a_.tokenizer_name);
      sp_path = IsDirectory(t) ? t + "/spiece.model" : t;
    } else if (!model_dir.empty() && PathExists(model_dir + "/spiece.model")) {
      sp_path = model_dir + "/spiece.model";
    }
    if (!sp_path.empty()) {
      ASSIGN_OR_RETURN(sp_bytes_, ReadFileToString(sp_path));
    } else {
      if (data_.train.empty()) {
        return absl::InvalidArgumentError(
            "no spiece.model (pass --tokenizer_name or a model directory that has one), and no training text to "
            "train one on");
      }
      std::vector<std::string> text;
      for (const auto& p : data_.train) {
        text.push_back(p.source);
        text.push_back(p.target);
      }
      UnigramTrainerOptions o;
      o.vocab_size = static_cast<int>(a_.tokenizer_vocab_size);
      const auto t0 = Clock::now();
      ASSIGN_OR_RETURN(sp_bytes_, TrainUnigram(text, o));
      Say(
          absl::StrFormat("tokenizer: no spiece.model given; trained a %d-piece unigram SentencePiece model on the %zu "
                          "training texts in %.1f s (saved as %s/spiece.model)",
                          o.vocab_size, text.size(), std::chrono::duration<double>(Clock::now() - t0).count(), out_));
    }
    ASSIGN_OR_RETURN(SentencePiece sp,
                     SentencePiece::Parse(sp_bytes_, sp_path.empty() ? "trained tokenizer" : sp_path));
    sp_ = std::make_unique<SentencePiece>(std::move(sp));
    if (a_.demo && a_.model_name_or_path.empty()) {
      config_ = DemoConfig(sp_->vocab_size());
      Say(absl::StrFormat("model: a small T5 (d_model %d, %d+%d layers, vocab %d), random init", config_.d_model,
                          config_.num_layers, config_.num_decoder_layers, config_.vocab_size));
    }
    if (sp_->vocab_size() > config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("the tokenizer has ", sp_->vocab_size(),
                                                     " pieces but the model's vocab_size is ", config_.vocab_size));
    }
    model_ = std::make_shared<T5ForConditionalGeneration>(config_, a_.seed);
    if (!model_dir.empty()) {
      const std::string weights = model_dir + "/model.safetensors";
      if (PathExists(weights)) {
        RETURN_IF_ERROR(model_->LoadHfCheckpoint(weights));
        Say(absl::StrCat("model: ", weights));
      } else {
        Say(absl::StrCat("model: ", model_dir, " has no model.safetensors; random init (seed ", a_.seed, ")"));
      }
    }
    std::int64_t params = 0;
    for (const auto& p : model_->parameters()) params += p.numel();
    Say(absl::StrFormat("model: %.1fM parameters", params / 1e6));
    summary_.trained.emplace_back(
        "model", absl::StrFormat("%s, %.1fM parameters",
                                 a_.model_name_or_path.empty() ? "a small T5 (random init)" : a_.model_name_or_path,
                                 params / 1e6));
    return absl::OkStatus();
  }

  absl::Status SetupEngine() {
    std::string source;
    ASSIGN_OR_RETURN(nlohmann::json j, ReadDeepSpeedJson(a_.deepspeed,
                                                         {{"train_micro_batch_size_per_gpu", "auto"},
                                                          {"gradient_accumulation_steps", "auto"},
                                                          {"train_batch_size", "auto"},
                                                          {"gradient_clipping", "auto"},
                                                          {"zero_optimization", {{"stage", 0}}},
                                                          {"fp16", {{"enabled", "auto"}}},
                                                          {"bf16", {{"enabled", "auto"}}}},
                                                         &source));
    ASSIGN_OR_RETURN(nlohmann::json scheduler, SchedulerFor(a_.lr_scheduler_type));
    AddJobDefaults(
        j,
        {{"type", "AdamW"}, {"params", {{"lr", "auto"}, {"betas", "auto"}, {"eps", "auto"}, {"weight_decay", "auto"}}}},
        scheduler, a_.bf16, a_.fp16);
    // Steps: HF's arithmetic (a DistributedSampler pads the data to a multiple of the ranks).
    const std::int64_t micro = a_.per_device_train_batch_size;
    const auto n = static_cast<std::int64_t>(train_.size());
    const std::int64_t per_rank = (n + world_ - 1) / world_;
    micro_per_epoch_ = (per_rank + micro - 1) / micro;
    const std::int64_t updates_per_epoch = std::max<std::int64_t>(micro_per_epoch_ / a_.gradient_accumulation_steps, 1);
    total_steps_ =
        a_.max_steps > 0 ? a_.max_steps : static_cast<std::int64_t>(std::ceil(a_.num_train_epochs * updates_per_epoch));
    if (!a_.do_train) total_steps_ = 1;
    warmup_ =
        a_.warmup_steps > 0 ? a_.warmup_steps : static_cast<std::int64_t>(std::ceil(a_.warmup_ratio * total_steps_));
    AutoValues job;
    job.lr = a_.learning_rate;
    job.betas = {a_.adam_beta1, a_.adam_beta2};
    job.eps = a_.adam_epsilon;
    job.weight_decay = a_.weight_decay;
    job.micro_batch = micro;
    job.gradient_accumulation_steps = a_.gradient_accumulation_steps;
    job.max_grad_norm = a_.max_grad_norm;
    job.warmup_steps = warmup_;
    job.total_steps = total_steps_;
    job.fp16 = a_.fp16;
    job.bf16 = a_.bf16;
    job.hidden_size = config_.d_model;
    job.world_size = world_;
    ASSIGN_OR_RETURN(Config config, Config::FromJson(j.dump(), source, job));
    if (config.precision() == Precision::kFp16) {
      Say("warning: T5 is known to overflow in fp16 (HF transformers issue #10830); as HF does, the feed-forward "
          "output projection (wo) runs in fp32 and fp16 activations are clamped. --bf16 avoids both");
    }
    ASSIGN_OR_RETURN(engine_, Engine::Create(model_, config, comm_));
    const std::string engine_line = EngineDescription(*engine_);
    Say(absl::StrFormat("engine: %s, %d update steps", engine_line, total_steps_));
    summary_.trained.emplace_back("data", data_.description);
    summary_.trained.emplace_back("engine", engine_line);
    ProgressOptions progress;
    progress.total_steps = total_steps_;
    progress.steps_per_epoch =
        static_cast<double>(micro_per_epoch_) / static_cast<double>(a_.gradient_accumulation_steps);
    progress.report_every = std::max<std::int64_t>(total_steps_ / 10, 1);
    progress.peak_tflops = a_.peak_tflops;
    engine_->SetProgress(progress);
    return absl::OkStatus();
  }

  Batch ToDevice(Batch b) const {
    for (auto& [k, v] : b) v = v.to(engine_->device());
    return b;
  }

  absl::StatusOr<double> MeanOverRanks(double v) {
    ASSIGN_OR_RETURN(const double sum, SumOverRanks(*comm_, v, engine_->device()));
    return sum / world_;
  }

  // Where training is, kept in every checkpoint (client state) so a resumed run continues with
  // the same batches, sums and history.
  struct Position {
    std::int64_t epoch = 0;
    std::int64_t next_micro = 0;  // this rank's next micro-batch in the epoch
    double loss_sum = 0, log_sum = 0;
    std::int64_t micro_steps = 0, log_micro = 0;
  };

  // Every rank calls it (the loss sums are each rank's own).
  absl::StatusOr<nlohmann::json> PositionJson(const Position& p) {
    ASSIGN_OR_RETURN(const std::vector<double> loss_sums, RanksValues(*comm_, p.loss_sum, engine_->device()));
    ASSIGN_OR_RETURN(const std::vector<double> log_sums, RanksValues(*comm_, p.log_sum, engine_->device()));
    return nlohmann::json{{"epoch", p.epoch},
                          {"samples_in_epoch", p.next_micro * a_.per_device_train_batch_size * world_},
                          {"loss_sum", loss_sums},
                          {"log_sum", log_sums},
                          {"micro_steps", p.micro_steps},
                          {"log_micro", p.log_micro},
                          {"log_history", log_history_}};
  }

  // --resume_from_checkpoint: the engine's state, then where training was.
  absl::StatusOr<Position> Resume() {
    Position p;
    ASSIGN_OR_RETURN(const std::string from, ResolveResumeFromCheckpoint(a_.resume_from_checkpoint, out_));
    if (from.empty()) return p;
    ASSIGN_OR_RETURN(const LoadedCheckpoint c, engine_->LoadCheckpoint(from));
    const nlohmann::json j = nlohmann::json::parse(c.client_state, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("epoch")) {
      return absl::InvalidArgumentError(absl::StrCat(c.step_dir,
                                                     ": no training position (client_state): not saved "
                                                     "by t5_translate"));
    }
    p.epoch = j.value("epoch", std::int64_t{0});
    p.next_micro = j.value("samples_in_epoch", std::int64_t{0}) / (a_.per_device_train_batch_size * world_);
    p.loss_sum = RankValue(j.value("loss_sum", std::vector<double>{}), rank_, world_);
    p.log_sum = RankValue(j.value("log_sum", std::vector<double>{}), rank_, world_);
    p.micro_steps = j.value("micro_steps", std::int64_t{0});
    p.log_micro = j.value("log_micro", std::int64_t{0});
    log_history_ = j.value("log_history", nlohmann::json::array());
    Say(absl::StrFormat("resumed from %s: step %d, epoch %d, micro-batch %d of %d", c.step_dir, c.global_step, p.epoch,
                        p.next_micro, micro_per_epoch_));
    return p;
  }

  absl::StatusOr<nlohmann::json> Train() {
    const std::int64_t micro = a_.per_device_train_batch_size;
    const auto n = static_cast<std::int64_t>(train_.size());
    ASSIGN_OR_RETURN(Position pos, Resume());
    Say(
        absl::StrFormat("training: %d examples, %d epoch(s), batch %d per device x %d rank(s) x %d accumulation, "
                        "%d steps",
                        n, static_cast<std::int64_t>(std::ceil(a_.num_train_epochs)), micro, world_,
                        a_.gradient_accumulation_steps, total_steps_));
    const auto t0 = Clock::now();
    std::int64_t samples = 0;
    std::int64_t step = engine_->global_steps();
    const std::int64_t first_step = step;
    while (step < total_steps_) {
      // HF's DistributedSampler: shuffled with the seed and epoch, padded to a multiple of the ranks.
      std::vector<std::int64_t> order(n);
      for (std::int64_t i = 0; i < n; ++i) order[i] = i;
      const std::vector<std::int64_t> mine =
          RankShare(std::move(order), a_.seed + static_cast<std::uint64_t>(pos.epoch), rank_, world_);
      const auto per_rank = static_cast<std::int64_t>(mine.size());
      for (std::int64_t m = pos.next_micro; m < micro_per_epoch_ && step < total_steps_; ++m) {
        std::vector<const Example*> ex;
        for (std::int64_t k = m * micro; k < std::min((m + 1) * micro, per_rank); ++k) ex.push_back(&train_[mine[k]]);
        const Batch b = ToDevice(Collate(ex, sp_->pad_id(), a_.pad_to_max_length, a_.ignore_pad_token_for_loss,
                                         a_.max_source_length, a_.max_target_length));
        ASSIGN_OR_RETURN(at::Tensor loss, engine_->Forward(b));
        RETURN_IF_ERROR(engine_->Backward(loss));
        RETURN_IF_ERROR(engine_->Step());
        const double l = loss.item<double>();
        pos.loss_sum += l;
        pos.log_sum += l;
        ++pos.micro_steps;
        ++pos.log_micro;
        samples += static_cast<std::int64_t>(ex.size()) * world_;
        if (engine_->global_steps() == step) continue;
        step = engine_->global_steps();
        const double ep = static_cast<double>(pos.epoch) + static_cast<double>(m + 1) / micro_per_epoch_;
        if ((a_.logging_steps > 0 && step % a_.logging_steps == 0) || step == total_steps_) {
          ASSIGN_OR_RETURN(const double avg, MeanOverRanks(pos.log_sum / std::max<std::int64_t>(pos.log_micro, 1)));
          log_history_.push_back({{"loss", Round4(avg)},
                                  {"grad_norm", engine_->last_grad_norm()},
                                  {"learning_rate", engine_->lr()},
                                  {"epoch", Round4(ep)},
                                  {"step", step}});
          Say(absl::StrFormat("{'loss': %.4f, 'grad_norm': %.4g, 'learning_rate': %.4g, 'epoch': %.2f}", avg,
                              engine_->last_grad_norm(), engine_->lr(), ep));
          pos.log_sum = 0;
          pos.log_micro = 0;
        }
        // The position a resumed run starts from: after this micro-batch.
        Position next = pos;
        next.next_micro = m + 1;
        if (next.next_micro == micro_per_epoch_) {
          ++next.epoch;
          next.next_micro = 0;
        }
        RETURN_IF_ERROR(AtStep(step, ep, /*epoch_end=*/m + 1 == micro_per_epoch_, next));
      }
      ++pos.epoch;
      pos.next_micro = 0;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    epochs_done_ =
        static_cast<double>(step) / std::max<std::int64_t>(micro_per_epoch_ / a_.gradient_accumulation_steps, 1);
    ASSIGN_OR_RETURN(const double train_loss, MeanOverRanks(pos.loss_sum / std::max<std::int64_t>(pos.micro_steps, 1)));
    nlohmann::json m = {{"train_loss", train_loss},
                        {"train_runtime", Round4(secs)},
                        {"train_samples", static_cast<std::int64_t>(train_.size())},
                        {"train_samples_per_second", Round4(samples / secs)},
                        {"train_steps_per_second", Round4((step - first_step) / secs)},
                        {"epoch", Round4(epochs_done_)}};
    Say(absl::StrCat("train: ", m.dump()));
    return m;
  }

  // HF's mid-training evaluation (--eval_strategy steps|epoch) and checkpoints (--save_steps,
  // --save_total_limit): checkpoint-N holds the HF model and tokenizer, trainer_state.json and
  // the engine's whole state (global_stepN/, latest), from which --resume_from_checkpoint continues.
  absl::Status AtStep(std::int64_t step, double epoch, bool epoch_end, const Position& next) {
    const std::int64_t every = a_.eval_steps > 0 ? a_.eval_steps : a_.logging_steps;
    const bool eval = a_.do_eval && ((a_.eval_strategy == "steps" && every > 0 && step % every == 0) ||
                                     (a_.eval_strategy == "epoch" && epoch_end));
    if (eval) {
      ASSIGN_OR_RETURN(EvalOutput e, Evaluate(val_, /*generate=*/false));
      log_history_.push_back({{"eval_loss", e.loss}, {"epoch", Round4(epoch)}, {"step", step}});
      Say(absl::StrFormat("{'eval_loss': %.4f, 'epoch': %.2f}", e.loss, epoch));
    }
    if (a_.save_steps > 0 && step % a_.save_steps == 0) {
      const std::string dir = JobCheckpointDir(out_, step);
      epochs_done_ = epoch;
      RETURN_IF_ERROR(SaveModel(dir));
      SaveCheckpointOptions o;
      ASSIGN_OR_RETURN(const nlohmann::json position, PositionJson(next));
      o.client_state = position.dump();
      o.files = {{"config.json", config_.ToJson()}, {"spiece.model", sp_bytes_}};
      for (const auto& item : model_->named_parameters()) {
        o.export_names.emplace(item.key(), T5ForConditionalGeneration::HfName(item.key()));
      }
      RETURN_IF_ERROR(SaveJobCheckpoint(*engine_, out_, o, a_.save_total_limit));
      Say(absl::StrCat("saved ", dir));
    }
    return absl::OkStatus();
  }

  // Evaluation split across ranks as HF's Trainer does it: batch j runs on rank j % world, and
  // the loss sums and generated ids are gathered so that every rank ends with the metrics and
  // predictions of the whole set, in order.
  absl::StatusOr<EvalOutput> Evaluate(const std::vector<Example>& ex, bool generate) {
    EvalOutput out;
    const auto t0 = Clock::now();
    const std::int64_t bs = a_.per_device_eval_batch_size;
    const auto n = static_cast<std::int64_t>(ex.size());
    const std::int64_t batches = (n + bs - 1) / bs;
    double loss_sum = 0;
    std::vector<at::Tensor> ids;  // this rank's generated ids, a [rows, length] tensor per batch
    RETURN_IF_ERROR(WithWholeParameters(*engine_, *model_, [&] {
      return CallTorch("evaluation", [&] {
        at::NoGradGuard no_grad;
        model_->eval();
        for (std::int64_t j = rank_; j < batches; j += world_) {
          std::vector<const Example*> chunk;
          for (std::int64_t k = j * bs; k < std::min(n, (j + 1) * bs); ++k) chunk.push_back(&ex[k]);
          const Batch b = ToDevice(Collate(chunk, sp_->pad_id(), a_.pad_to_max_length, a_.ignore_pad_token_for_loss,
                                           a_.max_source_length, 0));
          loss_sum += model_->Forward(b).item<double>() * static_cast<double>(chunk.size());
          if (!generate) continue;
          GenerateOptions g;
          g.max_length = gen_max_;
          g.num_beams = a_.num_beams;
          ids.push_back(model_->Generate(b.at("input_ids"), b.at("attention_mask"), g));
        }
        model_->train();
      });
    }));
    ASSIGN_OR_RETURN(out.loss, SumOverRanks(*comm_, loss_sum, engine_->device()));
    out.loss /= static_cast<double>(std::max<std::int64_t>(n, 1));
    out.batches = batches;
    if (generate) {
      ASSIGN_OR_RETURN(const at::Tensor all, GatherGenerated(ids, ShardRows(n, bs, world_)));
      std::vector<std::string> refs;
      std::int64_t lens = 0;
      const std::vector<std::vector<int>> generated = Unshard(all, n, bs);
      for (std::int64_t i = 0; i < n; ++i) {
        for (int t : generated[i]) lens += t != sp_->pad_id();
        out.predictions.push_back(std::string(absl::StripAsciiWhitespace(sp_->Decode(generated[i]))));
        const std::vector<int> label(ex[i].labels.begin(), ex[i].labels.end());
        refs.push_back(std::string(absl::StripAsciiWhitespace(sp_->Decode(label))));
      }
      ASSIGN_OR_RETURN(const Bleu bleu, CorpusBleu(out.predictions, refs));
      out.generated = true;
      out.bleu = bleu.score;
      out.gen_len = static_cast<double>(lens) / static_cast<double>(std::max<std::int64_t>(n, 1));
    }
    out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return out;
  }

  // Every rank's generated ids, [world, rows, length] on the CPU, -1 past each rank's sequences
  // (`rows` per rank: as many as the rank with the most batches makes).
  absl::StatusOr<at::Tensor> GatherGenerated(const std::vector<at::Tensor>& ids, std::int64_t rows) {
    std::int64_t length = 0;
    for (const at::Tensor& t : ids) length = std::max(length, t.size(1));
    if (world_ > 1) {
      at::Tensor l = at::full({1}, length, at::TensorOptions().dtype(at::kLong).device(engine_->device()));
      RETURN_IF_ERROR(AllReduceSync(*comm_, l, ReduceOp::kMax));
      length = l.item<std::int64_t>();
    }
    const auto opts = at::TensorOptions().dtype(at::kLong).device(engine_->device());
    at::Tensor local = at::full({rows, length}, -1, opts);
    std::int64_t row = 0;
    for (const at::Tensor& t : ids) {
      local.narrow(0, row, t.size(0)).narrow(1, 0, t.size(1)).copy_(t);
      row += t.size(0);
    }
    return GatherFromRanks(*comm_, local);
  }

  nlohmann::json Metrics(const std::string& split, const EvalOutput& e, std::size_t samples) const {
    nlohmann::json m = {{split + "_loss", e.loss},
                        {split + "_runtime", Round4(e.seconds)},
                        {split + "_samples", samples},
                        {split + "_samples_per_second", Round4(samples / e.seconds)},
                        {split + "_steps_per_second", Round4(e.batches / e.seconds)}};
    if (e.generated) {
      m[split + "_bleu"] = Round4(e.bleu);
      m[split + "_gen_len"] = Round4(e.gen_len);
    }
    if (split == "eval" && a_.do_train) m["epoch"] = Round4(epochs_done_);
    return m;
  }

  // The end-of-job summary's metrics (the best eval_loss of the history, the final results) and
  // outputs.
  void AddSummaryResults(const nlohmann::json& all) {
    const nlohmann::json* best = nullptr;
    for (const nlohmann::json& h : log_history_) {
      if (h.contains("eval_loss") && (best == nullptr || h["eval_loss"] < (*best)["eval_loss"])) best = &h;
    }
    if (best != nullptr) {
      summary_.metrics.emplace_back(
          "best eval_loss",
          absl::StrFormat("%.4f (step %d)", (*best)["eval_loss"].get<double>(), (*best)["step"].get<std::int64_t>()));
    }
    for (const char* key : {"train_loss", "eval_loss", "eval_bleu", "predict_loss", "predict_bleu"}) {
      if (all.contains(key)) summary_.metrics.emplace_back(key, absl::StrFormat("%.4f", all[key].get<double>()));
    }
    if (a_.do_train) summary_.outputs.emplace_back(out_ + "/model.safetensors", "the trained model (HF layout)");
    if (!all.empty()) summary_.outputs.emplace_back(out_ + "/all_results.json", "the metrics");
    if (a_.do_predict && a_.predict_with_generate) {
      summary_.outputs.emplace_back(out_ + "/generated_predictions.txt", "the test split's translations");
    }
    AddEngineOutputs(*engine_, out_, &summary_);
  }

  void Samples(const EvalOutput& e, std::size_t n) const {
    for (std::size_t i = 0; i < std::min(n, e.predictions.size()); ++i) {
      Say(absl::StrCat("  en: ", data_.validation[i].source, "\n  ro (reference): ", data_.validation[i].target,
                       "\n  ro (model):     ", e.predictions[i]));
    }
  }

  absl::Status SaveResults(const std::string& split, const nlohmann::json& m) {
    if (rank_ != 0) return absl::OkStatus();
    return WriteFileAtomically(absl::StrCat(out_, "/", split, "_results.json"), m.dump(4) + "\n");
  }

  // The model as an HF directory (config.json, model.safetensors, spiece.model) with
  // trainer_state.json, into `dir` (created).
  absl::Status SaveModel(const std::string& dir) {
    return WithWholeParameters(*engine_, *model_, [&]() -> absl::Status {
      if (rank_ != 0) return absl::OkStatus();
      absl::Status s = MakeDirs(dir);
      if (s.ok()) s = model_->SaveHfCheckpoint(dir);
      if (s.ok()) s = WriteFileAtomically(dir + "/spiece.model", sp_bytes_);
      nlohmann::json state = {{"global_step", engine_->global_steps()},
                              {"max_steps", total_steps_},
                              {"num_train_epochs", a_.num_train_epochs},
                              {"epoch", Round4(epochs_done_)},
                              {"train_batch_size", a_.per_device_train_batch_size},
                              {"logging_steps", a_.logging_steps},
                              {"seed", a_.seed},
                              {"log_history", log_history_}};
      if (s.ok()) s = WriteFileAtomically(dir + "/trainer_state.json", state.dump(2) + "\n");
      return s;
    });
  }

  const TranslateArgs a_;
  std::string out_;
  int rank_ = 0, world_ = 1;
  std::shared_ptr<Communicator> comm_;
  TranslationData data_;
  T5Config config_;
  std::string sp_bytes_;
  std::unique_ptr<SentencePiece> sp_;
  std::shared_ptr<T5ForConditionalGeneration> model_;
  std::unique_ptr<Engine> engine_;
  std::string prefix_;
  std::vector<Example> train_, val_, test_;
  std::int64_t gen_max_ = 128, micro_per_epoch_ = 1, total_steps_ = 1, warmup_ = 0;
  double epochs_done_ = 0;
  nlohmann::json log_history_ = nlohmann::json::array();
  JobSummary summary_{"t5_translate"};
};

}  // namespace

absl::Status RunTranslation(const TranslateArgs& args) {
  Job job(args);
  return job.Run();
}

}  // namespace zt::nlp
