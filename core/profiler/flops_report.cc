// The flops profiler's report (flops_profiler.h): DeepSpeed's units and print_model_profile's text.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/profiler/flops_profiler.h"
#include "core/util/file_util.h"

namespace zt::profiler {
namespace {

// Two decimals at most, as Python's f"{round(x, 2):g}".
std::string Round2(double v) { return absl::StrFormat("%g", std::round(v * 100.0) / 100.0); }

// Python's repr of round(x, 2): "433.07", "12.0".
std::string Round2Repr(double v) {
  std::string s = absl::StrFormat("%.2f", v);
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return s;
}

// "12.34%" of the whole, for the detailed profile.
std::string Percent(double part, double whole) {
  return absl::StrFormat("%.2f%%", whole > 0 ? 100.0 * part / whole : 0.0);
}

// A DeepSpeed summary line: the label left-aligned in 70 columns, two spaces, the value.
void Line(std::string* out, absl::string_view label, absl::string_view value) {
  absl::StrAppendFormat(out, "%-70s  %s\n", label, value);
}

}  // namespace

// ---- units ----

std::string NumberToString(double v) {
  double magnitude = 1.0;
  const char* units = "";
  if (v >= 1e12) {
    magnitude = 1e12, units = "T";
  } else if (v >= 1e9) {
    magnitude = 1e9, units = "G";
  } else if (v >= 1e6) {
    magnitude = 1e6, units = "M";
  } else if (v >= 1e3) {
    magnitude = 1e3, units = "K";
  } else if (v >= 1.0 || v == 0.0) {
    magnitude = 1.0, units = "";
  } else if (v >= 1e-3) {
    magnitude = 1e-3, units = "m";
  } else {
    magnitude = 1e-6, units = "u";
  }
  return absl::StrCat(Round2(v / magnitude), " ", units);
}

std::string MacsToString(double macs) { return NumberToString(macs) + "MACs"; }
std::string FlopsToString(double flops_per_second) { return NumberToString(flops_per_second) + "FLOPS"; }
std::string DurationToString(double seconds) { return NumberToString(seconds) + "s"; }
std::string ParamsToString(double params) {
  std::string s = NumberToString(params);
  std::replace(s.begin(), s.end(), 'G', 'B');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// ---- the report ----

namespace {

// One depth's modules aggregated by class, in the order they first appear (DeepSpeed's
// walk_module), then sorted by one metric (stably) for the top k.
struct ClassTotals {
  std::string class_name;
  double params = 0, macs = 0, latency = 0;
};

std::string TopK(std::vector<ClassTotals> rows, std::size_t k, double ClassTotals::*metric,
                 std::string (*format)(double)) {
  std::stable_sort(rows.begin(), rows.end(),
                   [&](const ClassTotals& a, const ClassTotals& b) { return a.*metric > b.*metric; });
  std::string out = "{";
  for (std::size_t i = 0; i < std::min(k, rows.size()); ++i) {
    absl::StrAppend(&out, i > 0 ? ", " : "", "'", rows[i].class_name, "': '", format(rows[i].*metric), "'");
  }
  return out + "}";
}

}  // namespace

std::string FlopsProfiler::Report(const ProfileSummary& s) const {
  const std::vector<ModuleProfile>& mods = modules();
  const double flops = static_cast<double>(total_flops());
  const double macs = static_cast<double>(total_macs());
  const double params = static_cast<double>(total_params());
  const double root_latency = total_latency_s();
  const int mp = std::max(1, s.model_parallel_size);
  std::string out;
  absl::StrAppend(&out, "-------------------------- DeepSpeed Flops Profiler --------------------------\n");
  absl::StrAppend(&out, "Profile Summary at step ", s.profile_step, ":\n");
  absl::StrAppend(&out,
                  "Notations:\n"
                  "data parallel size (dp_size), model parallel size(mp_size),\n"
                  "number of parameters (params), number of multiply-accumulate operations(MACs),\n"
                  "number of floating-point operations (flops), floating-point operations per second (FLOPS),\n"
                  "fwd latency (forward propagation latency), bwd latency (backward propagation latency),\n"
                  "step (weights update latency), iter latency (sum of fwd, bwd and step latency)\n\n");
  Line(&out, "world size: ", absl::StrCat(s.world_size));
  Line(&out, "data parallel size: ", absl::StrCat(s.data_parallel_size));
  Line(&out, "model parallel size: ", absl::StrCat(mp));
  Line(&out, "batch size per GPU: ", absl::StrCat(s.micro_batch_size_per_gpu));
  Line(&out, "params per GPU: ", ParamsToString(params));
  Line(&out, "params of model = params per GPU * mp_size: ", ParamsToString(params * mp));
  Line(&out, "fwd MACs per GPU: ", MacsToString(macs));
  Line(&out, "fwd flops per GPU: ", NumberToString(flops));
  Line(&out, "fwd flops of model = fwd flops per GPU * mp_size: ", NumberToString(flops * mp));
  const double fwd = s.fwd_latency_s > 0 ? s.fwd_latency_s : root_latency;
  Line(&out, "fwd latency: ", DurationToString(fwd));
  Line(&out, "fwd FLOPS per GPU = fwd flops per GPU / fwd latency: ", FlopsToString(fwd > 0 ? flops / fwd : 0.0));
  if (s.bwd_latency_s > 0) {
    // The backward is not profiled: DeepSpeed assumes it costs 2x the forward's FLOPs (plus the
    // recomputed forward with activation checkpointing).
    const double bwd_factor = 2.0 + s.recompute_fwd_factor;
    const double bwd = s.bwd_latency_s;
    Line(&out, "bwd latency: ", DurationToString(bwd));
    Line(&out, absl::StrFormat("bwd FLOPS per GPU = %g * fwd flops per GPU / bwd latency: ", bwd_factor),
         FlopsToString(bwd_factor * flops / bwd));
    Line(&out,
         absl::StrFormat("fwd+bwd FLOPS per GPU = %g * fwd flops per GPU / (fwd+bwd latency): ", bwd_factor + 1.0),
         FlopsToString((bwd_factor + 1.0) * flops / (fwd + bwd)));
    Line(&out, "step latency: ", DurationToString(s.step_latency_s));
    const double iter = fwd + bwd + s.step_latency_s;
    Line(&out, "iter latency: ", DurationToString(iter));
    Line(&out, absl::StrFormat("FLOPS per GPU = %g * fwd flops per GPU / iter latency: ", bwd_factor + 1.0),
         FlopsToString((bwd_factor + 1.0) * flops / iter));
    const double samples = s.samples_per_second > 0
                               ? s.samples_per_second
                               : static_cast<double>(s.micro_batch_size_per_gpu) * s.world_size / iter;
    Line(&out, "samples/second: ", Round2Repr(samples));
  }

  // Aggregated profile: module_depth -1 shows every depth, d >= 0 depths 0..d.
  int max_depth = 0;
  for (const ModuleProfile& m : mods) max_depth = std::max(max_depth, m.depth);
  const int last_depth =
      s.module_depth < 0 ? max_depth : static_cast<int>(std::min<std::int64_t>(s.module_depth, max_depth));
  const std::size_t k = static_cast<std::size_t>(std::max<std::int64_t>(s.top_modules, 0));
  absl::StrAppend(&out, "\n----------------------------- Aggregated Profile per GPU -----------------------------\n");
  absl::StrAppend(&out, "Top ", s.top_modules,
                  " modules in terms of params, MACs or fwd latency at different model depths:\n");
  if (!mods.empty()) {
    for (int d = 0; d <= last_depth; ++d) {
      std::vector<ClassTotals> rows;
      for (const ModuleProfile& m : mods) {
        if (m.depth != d) continue;
        auto it =
            std::find_if(rows.begin(), rows.end(), [&](const ClassTotals& r) { return r.class_name == m.class_name; });
        if (it == rows.end()) it = rows.insert(rows.end(), ClassTotals{m.class_name});
        it->params += static_cast<double>(m.params);
        it->macs += static_cast<double>(m.macs);
        it->latency += m.latency_s;
      }
      absl::StrAppend(&out, "depth ", d, ":\n");
      absl::StrAppend(&out, "    params      - ", TopK(rows, k, &ClassTotals::params, &ParamsToString), "\n");
      absl::StrAppend(&out, "    MACs        - ", TopK(rows, k, &ClassTotals::macs, &MacsToString), "\n");
      absl::StrAppend(&out, "    fwd latency - ", TopK(rows, k, &ClassTotals::latency, &DurationToString), "\n");
    }
  }

  if (s.detailed && !mods.empty()) {
    absl::StrAppend(&out, "\n------------------------------ Detailed Profile per GPU ------------------------------\n");
    absl::StrAppend(
        &out,
        "Each module profile is listed after its name in the following order: \n"
        "params, percentage of total params, MACs, percentage of total MACs, fwd latency, percentage of "
        "total fwd latency, fwd FLOPS\n\n"
        "Note: 1. A module can run ops outside its submodules' scopes (e.g. a loss, or a torch::nn::Linear, "
        "which has no scope of its own). They are counted in the module itself; they make up the "
        "difference between a parent's MACs (or latency) and the sum of its submodules'.\n"
        "2. Number of floating-point operations is a theoretical estimation, thus FLOPS computed using "
        "that could be larger than the maximum system throughput.\n"
        "3. The fwd latency listed in the top module's profile is measured by the profiler around the "
        "forward (module scopes synchronise the device), thus it can differ from the fwd latency shown "
        "above which is captured by the engine.\n\n");
    const int depth_limit = s.module_depth < 0 ? max_depth : static_cast<int>(s.module_depth);
    std::function<void(int, int)> print = [&](int i, int indent) {
      const ModuleProfile& m = mods[i];
      const std::string pad(2 * indent, ' ');
      std::string items = absl::StrCat(
          ParamsToString(static_cast<double>(m.params)), ", ", Percent(static_cast<double>(m.params), params),
          " Params, ", MacsToString(static_cast<double>(m.macs)), ", ", Percent(static_cast<double>(m.macs), macs),
          " MACs, ", DurationToString(m.latency_s), ", ", Percent(m.latency_s, root_latency), " latency, ",
          FlopsToString(m.latency_s > 0 ? static_cast<double>(m.flops) / m.latency_s : 0.0));
      if (m.calls > 1) absl::StrAppend(&items, ", ", m.calls, " calls");
      const std::string head =
          i == 0 ? m.class_name : absl::StrCat("(", m.name.substr(m.name.rfind('.') + 1), "): ", m.class_name);
      if (m.children.empty() || m.depth >= depth_limit) {
        absl::StrAppend(&out, pad, head, "(", items, ")\n");
        return;
      }
      absl::StrAppend(&out, pad, head, "(\n", pad, "  ", items, ",\n");
      for (int c : m.children) print(c, indent + 1);
      absl::StrAppend(&out, pad, ")\n");
    };
    print(0, 0);
  }
  absl::StrAppend(&out, "------------------------------------------------------------------------------\n");
  return out;
}

absl::Status WriteReport(const std::string& text, const std::string& output_file) {
  if (output_file.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return absl::OkStatus();
  }
  const std::size_t slash = output_file.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = output_file.substr(0, slash);
    if (!IsDirectory(dir)) {
      if (absl::Status s = MakeDirs(dir); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("flops_profiler output_file ", output_file, ": ", s.message()));
      }
    }
  }
  if (absl::Status s = WriteFileAtomically(output_file, text); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("flops_profiler output_file ", output_file, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace zt::profiler
