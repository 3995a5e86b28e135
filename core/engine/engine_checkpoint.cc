// Engine::SaveCheckpoint and Engine::LoadCheckpoint: the engine's state in a checkpoint step
// directory (core/ckpt/checkpoint_dir.h).
//
// Files of global_stepN/ (besides the manifest):
//   zero_rank_RRRRR_states.bin   rank R's optimizer partition, one section per kind, each the
//                                partition's length: [param (compute dtype; not at fp32) |
//                                master (fp32) | exp_avg (fp32) | exp_avg_sq (fp32)].  At stage 0
//                                only rank 0 writes one (every rank holds everything).
//   rng_state_rank_RRRRR.bin     rank R's generator states (RngFile below).
//   whatever SaveCheckpointOptions::files names (rank 0).
// The manifest's tensors say which elements of which parameter every section holds:
// "master/<parameter name>" with a partition slice per rank holding part of it, the same for
// "param/", "exp_avg/" and "exp_avg_sq/".  Its meta: "engine_state" (counters, schedule,
// scaler), "config" (the DeepSpeed config), "client_state", "export_names".
//
// Loading maps this rank's partition (at the current world size and stage) onto those slices,
// so a checkpoint loads at any world size and stage; at the same ones every rank reads exactly
// its own file back.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/engine/engine.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace zt {
namespace {

constexpr char kFormat[] = "zerotrain-engine-1";
constexpr int kNumKinds = 4;
constexpr std::array<const char*, kNumKinds> kKindNames = {"param", "master", "exp_avg", "exp_avg_sq"};
constexpr int kParamKind = 0, kMasterKind = 1;
constexpr std::int64_t kCopyElems = std::int64_t{1} << 22;  // host copies of at most 16 MiB of fp32
constexpr char kRngMagic[] = "ZTRNG001";

std::string StatesFileName(int rank) { return absl::StrFormat("zero_rank_%05d_states.bin", rank); }
std::string RngFileName(int rank) { return absl::StrFormat("rng_state_rank_%05d.bin", rank); }
std::string EntryName(int kind, const std::string& param) { return absl::StrCat(kKindNames[kind], "/", param); }

const char* SafetensorsDtype(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16:
      return "BF16";
    case at::kHalf:
      return "F16";
    default:
      return "F32";
  }
}

std::optional<at::ScalarType> FromSafetensorsDtype(const std::string& d) {
  if (d == "F32") return at::kFloat;
  if (d == "BF16") return at::kBFloat16;
  if (d == "F16") return at::kHalf;
  return std::nullopt;
}

// Every rank's `mine` (the same length everywhere), rank by rank.
absl::StatusOr<std::vector<std::vector<std::int64_t>>> AllGatherInts(Communicator& comm, const at::Device& device,
                                                                     const std::vector<std::int64_t>& mine) {
  const int world = comm.world_size();
  const auto k = static_cast<std::int64_t>(mine.size());
  at::Tensor in, out;
  RETURN_IF_ERROR(CallTorch("exchange checkpoint status", [&] {
    in = at::tensor(mine, at::kLong).to(device);
    out = at::empty({world * k}, in.options());
  }));
  if (world == 1) {
    out = in;
  } else {
    ASSIGN_OR_RETURN(auto w, comm.AllGather(out, in));
    RETURN_IF_ERROR(w->Wait());
  }
  std::vector<std::vector<std::int64_t>> rows(world);
  RETURN_IF_ERROR(CallTorch("read checkpoint status", [&] {
    const at::Tensor host = out.to(at::kCPU);
    const std::int64_t* p = host.data_ptr<std::int64_t>();
    for (int r = 0; r < world; ++r) rows[r].assign(p + r * k, p + (r + 1) * k);
  }));
  return rows;
}

// The first rank whose row starts with 0 (failed), else -1.
int FirstFailed(const std::vector<std::vector<std::int64_t>>& rows) {
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r][0] == 0) return static_cast<int>(r);
  }
  return -1;
}

// The default generators this rank draws from: the CPU's and, training on CUDA, its device's.
std::vector<at::Generator> Generators(const at::Device& device) {
  std::vector<at::Generator> out = {at::globalContext().defaultGenerator(at::kCPU)};
  if (device.is_cuda()) out.push_back(at::globalContext().defaultGenerator(device));
  return out;
}

// RngFile: kRngMagic, then per generator a little-endian u64 length and its get_state() bytes.
absl::StatusOr<std::string> RngBytes(const at::Device& device) {
  std::string out = kRngMagic;
  RETURN_IF_ERROR(CallTorch("read the generator states", [&] {
    for (at::Generator& g : Generators(device)) {
      at::Tensor state;
      {
        std::lock_guard<std::mutex> lock(g.mutex());
        state = g.get_state();
      }
      const std::uint64_t n = static_cast<std::uint64_t>(state.nbytes());
      out.append(reinterpret_cast<const char*>(&n), sizeof(n));
      out.append(static_cast<const char*>(state.data_ptr()), n);
    }
  }));
  return out;
}

absl::Status RestoreRng(const std::string& bytes, const at::Device& device, const std::string& source) {
  const auto bad = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(source, ": not a generator state file (", why, ")"));
  };
  if (bytes.compare(0, std::strlen(kRngMagic), kRngMagic) != 0) return bad("no header");
  std::size_t at = std::strlen(kRngMagic);
  std::vector<at::Generator> gens = Generators(device);
  std::vector<at::Tensor> states;
  while (at < bytes.size()) {
    std::uint64_t n = 0;
    if (bytes.size() - at < sizeof(n)) return bad("a truncated length");
    std::memcpy(&n, bytes.data() + at, sizeof(n));
    at += sizeof(n);
    if (bytes.size() - at < n) return bad("a truncated state");
    at::Tensor t = at::empty({static_cast<std::int64_t>(n)}, at::kByte);
    std::memcpy(t.data_ptr(), bytes.data() + at, n);
    states.push_back(std::move(t));
    at += n;
  }
  if (states.empty()) return bad("no states");
  // A checkpoint from CUDA training resumed on the CPU (or back) restores the CPU generator only.
  const std::size_t count = std::min(states.size(), gens.size());
  return CallTorch("restore the generator states", [&] {
    for (std::size_t i = 0; i < count; ++i) {
      std::lock_guard<std::mutex> lock(gens[i].mutex());
      gens[i].set_state(states[i]);
    }
  });
}

}  // namespace

Engine::StateMap Engine::MapState(int rank) const {
  StateMap m;
  if (stage3_) {
    std::unordered_map<const c10::TensorImpl*, int> index;
    for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
      if (!item.value().requires_grad()) continue;
      index.emplace(item.value().unsafeGetTensorImpl(), static_cast<int>(m.names.size()));
      m.names.push_back(item.key());
      m.shapes.push_back(item.value().sizes().vec());
    }
    for (const Stage3::ShardPiece& p : stage3_->ShardPieces(rank)) {
      m.pieces.push_back({index.at(p.param.unsafeGetTensorImpl()), p.begin, p.end, p.offset});
    }
    m.size = stage3_->shard_elems();
    return m;
  }
  m.names = param_names_;
  for (const at::Tensor& p : params_) m.shapes.push_back(p.sizes().vec());
  const Range part = config_.zero_optimization.stage == 0 ? Range{0, layout_.padded()} : layout_.shard(rank);
  m.size = part.size();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Range r = layout_.param(static_cast<std::int64_t>(i));
    const std::int64_t from = std::max(r.begin, part.begin), to = std::min(r.end, part.end);
    if (from < to) m.pieces.push_back({static_cast<int>(i), from - r.begin, to - r.begin, from - part.begin});
  }
  return m;
}

absl::StatusOr<at::Tensor> Engine::PartitionValues(int kind, const HostAdam::State* host) {
  if (kind == kParamKind) {
    if (stage3_) return stage3_->ShardValues();
    return opt_params_;
  }
  const at::Tensor* host_part = nullptr;
  const at::Tensor* device_part = nullptr;
  if (host != nullptr) host_part = kind == 1 ? &host->master : kind == 2 ? &host->exp_avg : &host->exp_avg_sq;
  if (adam_) device_part = kind == 1 ? &adam_->master() : kind == 2 ? &adam_->exp_avg() : &adam_->exp_avg_sq();
  if (host_part == nullptr) return *device_part;
  if (device_part == nullptr) return *host_part;
  at::Tensor out;
  RETURN_IF_ERROR(CallTorch("collect the optimizer state", [&] { out = at::cat({*host_part, device_part->cpu()}); }));
  return out;
}

absl::Status Engine::SaveCheckpoint(const std::string& save_dir, const SaveCheckpointOptions& options) {
  if (micro_steps_ % config_.gradient_accumulation_steps != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "SaveCheckpoint at micro-step ", micro_steps_, ", inside an accumulation of ",
        config_.gradient_accumulation_steps, " micro-steps: checkpoints are taken after an optimizer step"));
  }
  RETURN_IF_ERROR(Barrier());
  const int rank = comm_->rank(), world = comm_->world_size();
  const int stage = config_.zero_optimization.stage;
  const std::int64_t step = global_steps_;
  const bool fp32 = compute_dtype_ == at::kFloat;
  const auto holds = [&](int r) { return stage != 0 || r == 0; };

  // 1. Rank 0 opens the staging directory; the others learn its name.
  std::optional<ckpt::CheckpointWriter> writer;
  absl::Status local;
  if (rank == 0) {
    ckpt::CheckpointWriterOptions wo;
    wo.world_size = world;
    wo.zero_stage = stage;
    wo.update_latest = options.update_latest;
    wo.before_each_write_step = options.before_each_write_step;
    absl::StatusOr<ckpt::CheckpointWriter> w = ckpt::CheckpointWriter::Begin(save_dir, step, wo);
    if (w.ok()) {
      writer.emplace(*std::move(w));
    } else {
      local = w.status();
    }
  }
  ASSIGN_OR_RETURN(auto begun, AllGatherInts(*comm_, device_, {local.ok() ? 1 : 0, ::getpid()}));
  if (begun[0][0] == 0) {
    return rank == 0 ? local
                     : absl::AbortedError(absl::StrCat("checkpoint ", save_dir, " step ", step,
                                                       ": rank 0 could not start it (its log says why)"));
  }
  const std::string staging = ckpt::StagingDirName(save_dir, step, begun[0][1]);
  const auto hook = rank == 0 ? options.before_each_write_step : nullptr;

  // 2. Every rank writes its files.
  ckpt::FileEntry states, rng;
  if (holds(rank)) {
    std::optional<HostAdam::State> host;
    if (host_adam_) {
      absl::StatusOr<HostAdam::State> h = host_adam_->ReadState();
      if (h.ok()) host = *std::move(h);
      local = h.status();
    }
    absl::StatusOr<ckpt::FileSink> sink = local.ok() ? ckpt::OpenStagedFile(staging, StatesFileName(rank), rank, hook)
                                                     : absl::StatusOr<ckpt::FileSink>(local);
    for (int kind = fp32 ? 1 : 0; sink.ok() && local.ok() && kind < kNumKinds; ++kind) {
      absl::StatusOr<at::Tensor> values = PartitionValues(kind, host ? &*host : nullptr);
      local = values.status();
      for (std::int64_t off = 0; local.ok() && off < values->numel(); off += kCopyElems) {
        at::Tensor chunk;
        local = CallTorch("copy the state to the host", [&] {
          chunk = values->narrow(0, off, std::min(kCopyElems, values->numel() - off)).to(at::kCPU).contiguous();
        });
        if (local.ok()) local = sink->Append({static_cast<const char*>(chunk.data_ptr()), chunk.nbytes()});
      }
    }
    if (!sink.ok()) local = sink.status();
    if (local.ok()) {
      absl::StatusOr<ckpt::FileEntry> e = ckpt::FinishStagedFile(*std::move(sink));
      if (e.ok()) states = *e;
      local = e.status();
    }
  }
  if (local.ok()) {
    absl::StatusOr<std::string> bytes = RngBytes(device_);
    absl::StatusOr<ckpt::FileSink> sink =
        bytes.ok() ? ckpt::OpenStagedFile(staging, RngFileName(rank), rank, hook) : bytes.status();
    if (sink.ok()) local = sink->Append(*bytes);
    if (!sink.ok()) local = sink.status();
    if (local.ok()) {
      absl::StatusOr<ckpt::FileEntry> e = ckpt::FinishStagedFile(*std::move(sink));
      if (e.ok()) rng = *e;
      local = e.status();
    }
  }
  if (!local.ok()) ZT_LOG(ERROR) << "checkpoint " << staging << ": " << local;

  // 3. Rank 0 learns every rank's files and commits.
  ASSIGN_OR_RETURN(auto written,
                   AllGatherInts(*comm_, device_,
                                 {local.ok() ? 1 : 0, static_cast<std::int64_t>(states.size()),
                                  static_cast<std::int64_t>(states.crc32c()), static_cast<std::int64_t>(rng.size()),
                                  static_cast<std::int64_t>(rng.crc32c())}));
  if (rank == 0) {
    if (const int failed = FirstFailed(written); failed >= 0) {
      if (failed != 0) {
        local = absl::AbortedError(absl::StrCat("checkpoint ", save_dir, " step ", step, ": rank ", failed,
                                                " could not write its files (its log says why)"));
      }
      (void)writer->Abort();
    } else {
      local = [&]() -> absl::Status {
        const std::vector<int> kinds = fp32 ? std::vector<int>{1, 2, 3} : std::vector<int>{0, 1, 2, 3};
        for (int r = 0; r < world; ++r) {
          if (holds(r)) {
            const StateMap m = MapState(r);
            const std::string file = StatesFileName(r);
            std::int64_t base = 0;
            for (const int kind : kinds) {
              const at::ScalarType dtype = kind == kParamKind ? compute_dtype_ : at::kFloat;
              const std::int64_t es = static_cast<std::int64_t>(c10::elementSize(dtype));
              for (const StatePiece& p : m.pieces) {
                ckpt::TensorEntry t;
                t.set_name(EntryName(kind, m.names[p.param]));
                t.set_dtype(SafetensorsDtype(dtype));
                for (const std::int64_t d : m.shapes[p.param]) t.add_shape(d);
                t.set_file(file);
                t.set_offset(static_cast<std::uint64_t>(base + p.offset * es));
                t.set_nbytes(static_cast<std::uint64_t>((p.end - p.begin) * es));
                t.set_rank(r);
                t.mutable_partition()->set_begin(p.begin);
                t.mutable_partition()->set_end(p.end);
                RETURN_IF_ERROR(writer->AddTensor(std::move(t)));
              }
              base += m.size * es;
            }
            if (written[r][1] != base) {
              return absl::DataLossError(absl::StrCat("checkpoint ", staging, ": rank ", r, " wrote ", written[r][1],
                                                      " bytes of state, its partition needs ", base));
            }
            ckpt::FileEntry f;
            f.set_name(file);
            f.set_size(static_cast<std::uint64_t>(written[r][1]));
            f.set_crc32c(static_cast<std::uint32_t>(written[r][2]));
            f.set_rank(r);
            RETURN_IF_ERROR(writer->AddWrittenFile(f));
          }
          ckpt::FileEntry f;
          f.set_name(RngFileName(r));
          f.set_size(static_cast<std::uint64_t>(written[r][3]));
          f.set_crc32c(static_cast<std::uint32_t>(written[r][4]));
          f.set_rank(r);
          RETURN_IF_ERROR(writer->AddWrittenFile(f));
        }
        for (const auto& [name, bytes] : options.files) RETURN_IF_ERROR(writer->AddFile(name, bytes, -1));
        const LossScaler::State ls = scaler_.state();
        const nlohmann::json engine_state = {
            {"format", kFormat},
            {"global_steps", global_steps_},
            {"micro_steps", micro_steps_},
            {"skipped_steps", skipped_steps_},
            {"optimizer_steps", adam_ ? adam_->step_count() : host_adam_->step_count()},
            {"last_grad_norm", last_grad_norm()},
            {"lr_schedule_iteration", schedule_->last_batch_iteration()},
            {"lr", schedule_->lr()},
            {"loss_scaler",
             {{"scale", ls.scale},
              {"iter", ls.iter},
              {"last_overflow_iter", ls.last_overflow_iter},
              {"hysteresis", ls.hysteresis}}},
            {"compute_dtype", fp32 ? "fp32" : c10::toString(compute_dtype_)},
            {"world_size", world},
            {"zero_stage", stage}};
        writer->SetMeta("engine_state", engine_state.dump());
        writer->SetMeta("config", config_.ToJson());
        if (!options.client_state.empty()) writer->SetMeta("client_state", options.client_state);
        if (!options.export_names.empty()) writer->SetMeta("export_names", nlohmann::json(options.export_names).dump());
        RETURN_IF_ERROR(writer->Commit());
        if (options.keep > 0) RETURN_IF_ERROR(ckpt::RotateCheckpoints(save_dir, options.keep));
        return absl::OkStatus();
      }();
      if (!local.ok()) ZT_LOG(ERROR) << "checkpoint " << staging << ": " << local;
    }
  }
  ASSIGN_OR_RETURN(auto committed, AllGatherInts(*comm_, device_, {local.ok() ? 1 : 0}));
  if (!local.ok()) return local;
  if (committed[0][0] == 0) {
    return absl::AbortedError(
        absl::StrCat("checkpoint ", save_dir, " step ", step, ": rank 0 could not commit it (its log says why)"));
  }
  if (rank == 0) ZT_LOG(INFO) << "saved checkpoint " << save_dir << "/" << ckpt::StepDirName(step);
  return absl::OkStatus();
}

absl::StatusOr<LoadedCheckpoint> Engine::LoadCheckpoint(const std::string& path) {
  if (micro_steps_ % config_.gradient_accumulation_steps != 0) {
    return absl::FailedPreconditionError(absl::StrCat("LoadCheckpoint at micro-step ", micro_steps_,
                                                      ", inside an accumulation of ",
                                                      config_.gradient_accumulation_steps, " micro-steps"));
  }
  RETURN_IF_ERROR(Barrier());
  const int rank = comm_->rank();
  const StateMap map = MapState(rank);
  LoadedCheckpoint out;
  std::vector<at::Tensor> values(kNumKinds);
  nlohmann::json engine_state;
  std::string rng_bytes, rng_source;

  // 1. Every rank reads (and checks) what it needs; nothing changes yet.
  absl::Status local = [&]() -> absl::Status {
    ckpt::OpenCheckpointOptions open;
    open.verify_files = false;
    ASSIGN_OR_RETURN(ckpt::CheckpointReader reader, ckpt::OpenCheckpoint(path, open));
    const ckpt::Manifest& manifest = reader.manifest();
    out.step_dir = reader.step_dir();
    out.global_step = reader.global_step();
    out.saved_world_size = manifest.world_size();
    out.saved_stage = manifest.zero_stage();
    const std::string where = absl::StrCat(reader.step_dir(), "/", ckpt::kManifestFile);
    const auto meta = manifest.meta().find("engine_state");
    if (meta == manifest.meta().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": no engine_state: not a checkpoint of a training engine"));
    }
    engine_state = nlohmann::json::parse(meta->second, nullptr, /*allow_exceptions=*/false);
    if (!engine_state.is_object() || engine_state.value("format", "") != kFormat) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": engine_state is not ", kFormat, " (", meta->second.substr(0, 80), ")"));
    }
    if (const auto c = manifest.meta().find("client_state"); c != manifest.meta().end()) out.client_state = c->second;

    std::map<std::string, std::vector<const ckpt::TensorEntry*>> entries;
    for (const ckpt::TensorEntry& t : manifest.tensors()) entries[t.name()].push_back(&t);
    // The checkpoint's parameters must be the model's.
    const std::set<std::string> mine(map.names.begin(), map.names.end());
    std::vector<std::string> missing, unexpected;
    for (const std::string& n : map.names) {
      if (!entries.count(EntryName(kMasterKind, n))) missing.push_back(n);
    }
    for (const auto& [name, list] : entries) {
      const std::string prefix = absl::StrCat(kKindNames[kMasterKind], "/");
      if (name.rfind(prefix, 0) == 0 && !mine.count(name.substr(prefix.size()))) {
        unexpected.push_back(name.substr(prefix.size()));
      }
    }
    if (!missing.empty() || !unexpected.empty()) {
      const auto some = [](const std::vector<std::string>& v) {
        return absl::StrCat(v.size(), " (",
                            absl::StrJoin(v.begin(), v.begin() + std::min<std::size_t>(v.size(), 5), ", "),
                            v.size() > 5 ? ", ..." : "", ")");
      };
      return absl::InvalidArgumentError(absl::StrCat(reader.step_dir(),
                                                     ": saved from another model: parameters missing ", some(missing),
                                                     ", parameters the model does not have ", some(unexpected)));
    }
    std::set<std::string> verified;
    const auto verify = [&](const std::string& file) -> absl::Status {
      if (verified.insert(file).second) return reader.VerifyFile(file);
      return absl::OkStatus();
    };
    for (int kind = 0; kind < kNumKinds; ++kind) {
      const at::ScalarType dtype = kind == kParamKind ? compute_dtype_ : at::kFloat;
      if (kind == kParamKind) {
        // The saved 16-bit values when they are this dtype; else (fp32 either side) the master's.
        bool usable = compute_dtype_ != at::kFloat;
        for (const std::string& n : map.names) {
          const auto it = entries.find(EntryName(kParamKind, n));
          usable = usable && it != entries.end() && FromSafetensorsDtype(it->second[0]->dtype()) == dtype;
        }
        if (!usable) continue;
      }
      at::Tensor dest = at::zeros({map.size}, at::TensorOptions().dtype(dtype));
      for (const StatePiece& p : map.pieces) {
        const std::string name = EntryName(kind, map.names[p.param]);
        std::int64_t covered = 0;
        for (const ckpt::TensorEntry* t : entries[name]) {
          const std::vector<std::int64_t> shape(t->shape().begin(), t->shape().end());
          if (shape != map.shapes[p.param]) {
            return absl::InvalidArgumentError(absl::StrCat(where, ": ", name, " has shape [",
                                                           absl::StrJoin(shape, ", "), "], the model's is [",
                                                           absl::StrJoin(map.shapes[p.param], ", "), "]"));
          }
          const std::optional<at::ScalarType> saved = FromSafetensorsDtype(t->dtype());
          if (!saved || (kind != kParamKind && *saved != at::kFloat)) {
            return absl::InvalidArgumentError(absl::StrCat(where, ": ", name, " is ", t->dtype()));
          }
          std::int64_t numel = 1;
          for (const std::int64_t d : shape) numel *= d;
          const std::int64_t sb = t->has_partition() ? t->partition().begin() : 0;
          const std::int64_t se = t->has_partition() ? t->partition().end() : numel;
          const std::int64_t from = std::max(sb, p.begin), to = std::min(se, p.end);
          if (from >= to) continue;
          RETURN_IF_ERROR(verify(t->file()));
          const std::int64_t es = static_cast<std::int64_t>(c10::elementSize(*saved));
          ASSIGN_OR_RETURN(std::string bytes, reader.ReadFileRange(t->file(), t->offset() + (from - sb) * es,
                                                                   static_cast<std::uint64_t>((to - from) * es)));
          RETURN_IF_ERROR(CallTorch("place the saved values", [&] {
            dest.narrow(0, p.offset + from - p.begin, to - from)
                .copy_(at::from_blob(bytes.data(), {to - from}, at::TensorOptions().dtype(*saved)));
          }));
          covered += to - from;
        }
        if (covered != p.end - p.begin) {
          return absl::DataLossError(absl::StrCat(where, ": the slices of ", name, " cover ", covered, " of elements [",
                                                  p.begin, ", ", p.end, ") this rank needs"));
        }
      }
      values[kind] = std::move(dest);
    }
    if (!values[kParamKind].defined()) values[kParamKind] = values[kMasterKind].to(compute_dtype_);
    if (rank < manifest.world_size()) {
      rng_source = absl::StrCat(reader.step_dir(), "/", RngFileName(rank));
      ASSIGN_OR_RETURN(rng_bytes, reader.ReadFile(RngFileName(rank)));
    }
    return absl::OkStatus();
  }();
  if (!local.ok()) ZT_LOG(ERROR) << "loading checkpoint " << path << ": " << local;

  // 2. All or nothing.
  ASSIGN_OR_RETURN(auto read, AllGatherInts(*comm_, device_, {local.ok() ? 1 : 0}));
  if (!local.ok()) return local;
  if (const int failed = FirstFailed(read); failed >= 0) {
    return absl::AbortedError(absl::StrCat("checkpoint ", path, ": rank ", failed,
                                           " could not read its part (its log says why); nothing was loaded"));
  }

  // 3. Install.
  RETURN_IF_ERROR(InstallPartition(values, engine_state.value("optimizer_steps", std::int64_t{0})));
  global_steps_ = engine_state.value("global_steps", std::int64_t{0});
  micro_steps_ = global_steps_ * config_.gradient_accumulation_steps;
  skipped_steps_ = engine_state.value("skipped_steps", std::int64_t{0});
  last_grad_norm_ = engine_state.value("last_grad_norm", 0.0);
  last_grad_norm_device_ = at::Tensor();
  schedule_->StepTo(engine_state.value("lr_schedule_iteration", std::int64_t{0}));
  const nlohmann::json ls = engine_state.value("loss_scaler", nlohmann::json::object());
  if (ls.contains("scale")) {
    scaler_.Restore({ls.value("scale", 1.0), ls.value("iter", std::int64_t{0}),
                     ls.value("last_overflow_iter", std::int64_t{-1}), ls.value("hysteresis", 1)});
  }
  if (!rng_bytes.empty()) RETURN_IF_ERROR(RestoreRng(rng_bytes, device_, rng_source));
  RETURN_IF_ERROR(Barrier());  // every rank returns with its state in place
  if (rank == 0) {
    ZT_LOG(INFO) << absl::StrFormat("loaded checkpoint %s: step %d, saved by %d rank(s) at ZeRO stage %d", out.step_dir,
                                    out.global_step, out.saved_world_size, out.saved_stage);
  }
  return out;
}

absl::Status Engine::InstallPartition(const std::vector<at::Tensor>& values, std::int64_t optimizer_steps) {
  const std::int64_t n = values[kMasterKind].numel(), h = host_elems_;
  if (host_adam_) {
    HostAdam::State s = {values[1].narrow(0, 0, h), values[2].narrow(0, 0, h), values[3].narrow(0, 0, h)};
    RETURN_IF_ERROR(host_adam_->RestoreState(s, optimizer_steps));
  }
  if (adam_) {
    at::Tensor m, a, b;
    RETURN_IF_ERROR(CallTorch("move the optimizer state to " + device_.str(), [&] {
      m = values[1].narrow(0, h, n - h).to(device_);
      a = values[2].narrow(0, h, n - h).to(device_);
      b = values[3].narrow(0, h, n - h).to(device_);
    }));
    RETURN_IF_ERROR(adam_->Restore(m, a, b, optimizer_steps));
  }
  const at::Tensor& params = values[kParamKind];
  if (stage3_) {
    if (stage3_->param_swap() != nullptr) {
      RETURN_IF_ERROR(stage3_->UpdateShards(0, params));
    } else {
      RETURN_IF_ERROR(CallTorch("restore the 16-bit shards", [&] { stage3_->params().copy_(params); }));
    }
    return stage3_->AfterStep(/*applied=*/true);  // releases stale gathers, refreshes persistent params
  }
  RETURN_IF_ERROR(CallTorch("restore the parameters", [&] { opt_params_.copy_(params); }));
  if (config_.zero_optimization.stage >= 1) RETURN_IF_ERROR(AllGatherUpdated());
  if (reducer_) reducer_->ZeroGrads();
  return absl::OkStatus();
}

}  // namespace zt
