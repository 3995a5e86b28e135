#include "core/engine/job_checkpoint.h"

#include <ATen/ATen.h>
#include <dirent.h>
#include <ftw.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/engine/job_util.h"
#include "core/util/file_util.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace zt {
namespace {

constexpr char kPrefix[] = "checkpoint-";

std::optional<std::int64_t> StepOf(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return std::nullopt;
  const std::string digits = name.substr(std::strlen(kPrefix));
  std::int64_t step = 0;
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(digits, &step)) {
    return std::nullopt;
  }
  return step;
}

// Every checkpoint-N directory: step -> complete.
absl::StatusOr<std::vector<std::pair<std::int64_t, bool>>> Scan(const std::string& output_dir) {
  std::vector<std::pair<std::int64_t, bool>> out;
  DIR* d = ::opendir(output_dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return absl::InternalError(absl::StrCat(output_dir, ": cannot list: ", std::strerror(errno)));
  }
  while (const dirent* e = ::readdir(d)) {
    const std::optional<std::int64_t> step = StepOf(e->d_name);
    const std::string dir = absl::StrCat(output_dir, "/", e->d_name);
    if (!step || !IsDirectory(dir)) continue;
    out.emplace_back(*step, IsRegularFile(absl::StrCat(dir, "/", ckpt::kLatestFile)));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

// Renamed to a .tmp- name first, so a crash mid-delete leaves no checkpoint-N with files missing.
absl::Status RemoveCheckpointTree(const std::string& dir) {
  const std::string doomed = absl::StrCat(dir, ".tmp-", ::getpid());
  if (std::rename(dir.c_str(), doomed.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", dir, " to ", doomed, ": ", std::strerror(errno)));
  }
  if (::nftw(doomed.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    return absl::InternalError(absl::StrCat("cannot remove ", doomed, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string JobCheckpointDir(const std::string& output_dir, std::int64_t step) {
  return absl::StrCat(output_dir, "/", kPrefix, step);
}

absl::StatusOr<std::vector<std::int64_t>> ListJobCheckpoints(const std::string& output_dir) {
  ASSIGN_OR_RETURN(const auto all, Scan(output_dir));
  std::vector<std::int64_t> out;
  for (const auto& [step, complete] : all) {
    if (complete) out.push_back(step);
  }
  return out;
}

absl::StatusOr<std::string> ResolveResumeFromCheckpoint(const std::string& arg, const std::string& output_dir) {
  if (arg.empty()) return std::string();
  const std::string lower = absl::AsciiStrToLower(arg);
  if (lower == "latest" || lower == "true") {
    ASSIGN_OR_RETURN(const auto all, Scan(output_dir));
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      if (it->second) return JobCheckpointDir(output_dir, it->first);
      ZT_LOG(WARNING) << JobCheckpointDir(output_dir, it->first)
                      << " is incomplete (no latest: its save was interrupted); looking at older checkpoints";
    }
    return absl::NotFoundError(
        absl::StrCat("--resume_from_checkpoint ", arg, ": ", output_dir, " holds no complete checkpoint-N directory"));
  }
  const std::string path = UserPath(arg);
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat("--resume_from_checkpoint ", arg, ": ", path, " does not exist"));
  }
  return path;
}

absl::Status RotateJobCheckpoints(const std::string& output_dir, std::int64_t save_total_limit) {
  if (save_total_limit <= 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(const auto all, Scan(output_dir));
  std::vector<std::int64_t> complete;
  for (const auto& [step, ok] : all) {
    if (ok) complete.push_back(step);
  }
  if (complete.empty()) return absl::OkStatus();
  const std::int64_t newest = complete.back();
  const std::size_t keep = static_cast<std::size_t>(std::max<std::int64_t>(save_total_limit, 1));
  for (const auto& [step, ok] : all) {
    if (step >= newest) continue;
    const bool kept =
        ok && std::find(complete.end() - std::min(keep, complete.size()), complete.end(), step) != complete.end();
    if (!kept) RETURN_IF_ERROR(RemoveCheckpointTree(JobCheckpointDir(output_dir, step)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> RanksValues(Communicator& comm, double mine, const at::Device& device) {
  at::Tensor local;
  RETURN_IF_ERROR(CallTorch("gather the ranks' sums", [&] { local = at::full({1}, mine, at::kDouble).to(device); }));
  ASSIGN_OR_RETURN(const at::Tensor all, GatherFromRanks(comm, local));
  const at::Tensor flat = all.reshape({-1}).contiguous();
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

double RankValue(const std::vector<double>& saved, int rank, int world) {
  if (static_cast<int>(saved.size()) == world) return saved[rank];
  if (rank != 0) return 0;
  if (saved.empty()) return 0;
  double total = 0;
  for (const double v : saved) total += v;
  return total * world / static_cast<double>(saved.size());
}

absl::StatusOr<EpochPosition> ResumeEpochJob(Engine& engine, const std::string& resume_from_checkpoint,
                                             const std::string& output_dir, const std::string& job) {
  EpochPosition p;
  ASSIGN_OR_RETURN(const std::string from, ResolveResumeFromCheckpoint(resume_from_checkpoint, output_dir));
  if (from.empty()) return p;
  ASSIGN_OR_RETURN(const LoadedCheckpoint c, engine.LoadCheckpoint(from));
  const nlohmann::json j = nlohmann::json::parse(c.client_state, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("job", "") != job) {
    return absl::InvalidArgumentError(absl::StrCat(c.step_dir, ": not a checkpoint of ", job,
                                                   " (its client_state: ", c.client_state.substr(0, 80), ")"));
  }
  p.epoch = j.value("epoch", 1);
  p.step_in_epoch = j.value("step_in_epoch", std::int64_t{0});
  p.loss_sum = RankValue(j.value("loss_sum", std::vector<double>{}), engine.comm().rank(), engine.comm().world_size());
  p.resumed_from = c.step_dir;
  return p;
}

absl::Status MaybeSaveEpochJob(Engine& engine, const std::string& job, const std::string& output_dir,
                               std::int64_t save_steps, std::int64_t save_total_limit, const EpochPosition& next,
                               const std::map<std::string, std::string>& files,
                               const std::function<absl::Status(const std::string& dir)>& export_files) {
  if (save_steps <= 0 || engine.global_steps() % save_steps != 0) return absl::OkStatus();
  const std::string dir = JobCheckpointDir(output_dir, engine.global_steps());
  RETURN_IF_ERROR(export_files(dir));
  ASSIGN_OR_RETURN(const std::vector<double> loss_sums, RanksValues(engine.comm(), next.loss_sum, engine.device()));
  SaveCheckpointOptions o;
  o.client_state = nlohmann::json{
      {"job", job},
      {"epoch", next.epoch},
      {"step_in_epoch", next.step_in_epoch},
      {"loss_sum",
       loss_sums}}.dump();
  o.files = files;
  return SaveJobCheckpoint(engine, output_dir, o, save_total_limit);
}

absl::Status SaveJobCheckpoint(Engine& engine, const std::string& output_dir, const SaveCheckpointOptions& options,
                               std::int64_t save_total_limit) {
  RETURN_IF_ERROR(engine.SaveCheckpoint(JobCheckpointDir(output_dir, engine.global_steps()), options));
  if (engine.comm().rank() == 0) RETURN_IF_ERROR(RotateJobCheckpoints(output_dir, save_total_limit));
  return absl::OkStatus();
}

}  // namespace zt
