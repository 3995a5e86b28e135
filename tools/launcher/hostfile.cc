#include "tools/launcher/hostfile.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/spelling.h"
#include "core/util/status_macros.h"

namespace zt::launch {
namespace {

std::vector<std::string> HostNames(const std::vector<HostSlots>& hosts) {
  std::vector<std::string> names;
  for (const HostSlots& h : hosts) names.push_back(h.host);
  return names;
}

std::string UnknownHost(absl::string_view host, const std::vector<HostSlots>& hosts, absl::string_view flag,
                        const std::string& where) {
  std::string msg = absl::StrCat(flag, ": host '", host, "' is not in ", where,
                                 " (hosts: ", absl::StrJoin(HostNames(hosts), ", "), ")");
  const std::string near = ClosestMatch(host, HostNames(hosts));
  if (!near.empty()) absl::StrAppend(&msg, "; did you mean '", near, "'?");
  return msg;
}

// "host1:0,2@host2" -> {host1: {0, 2}, host2: {}} (empty: the whole host), in the order given.
absl::StatusOr<std::vector<std::pair<std::string, std::vector<int>>>> ParseFilter(absl::string_view spec,
                                                                                  absl::string_view flag) {
  std::vector<std::pair<std::string, std::vector<int>>> out;
  for (absl::string_view part : absl::StrSplit(spec, '@')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " '", spec, "': an empty host entry"));
    std::vector<absl::string_view> host_slots = absl::StrSplit(part, absl::MaxSplits(':', 1));
    RETURN_IF_ERROR(CheckHostName(host_slots[0], flag));
    std::vector<int> slots;
    if (host_slots.size() == 2) {
      for (absl::string_view s : absl::StrSplit(host_slots[1], ',')) {
        int slot = -1;
        if (!absl::SimpleAtoi(s, &slot) || slot < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(flag, " '", spec, "': '", s, "' is not a slot number (host:0,1,2)"));
        }
        slots.push_back(slot);
      }
    }
    out.emplace_back(std::string(host_slots[0]), std::move(slots));
  }
  return out;
}

}  // namespace

absl::Status CheckHostName(absl::string_view host, absl::string_view what) {
  const bool ok = !host.empty() && host.size() <= 253 && host[0] != '-' && host[0] != '.' &&
                  std::all_of(host.begin(), host.end(), [](char c) {
                    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": '", absl::CHexEscape(host),
                   "' is not a host name or IPv4 address (letters, digits, '.', '-', '_'; not starting with '-')"));
}

absl::StatusOr<std::vector<HostSlots>> ParseHostfile(absl::string_view text, const std::string& path) {
  std::vector<HostSlots> hosts;
  std::map<std::string, int> seen;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (const auto hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    const std::string where = absl::StrCat(path, ":", line_no);
    std::vector<absl::string_view> words = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    int slots = 0;
    if (words.size() != 2 || !absl::ConsumePrefix(&words[1], "slots=") || !absl::SimpleAtoi(words[1], &slots) ||
        slots < 1) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": '", absl::CHexEscape(line),
                                                     "' is not 'HOSTNAME slots=N' with N >= 1 (DeepSpeed's format)"));
    }
    RETURN_IF_ERROR(CheckHostName(words[0], where));
    const std::string host(words[0]);
    if (auto [it, inserted] = seen.emplace(host, line_no); !inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": host '", host, "' is listed twice (first on line ", it->second, ")"));
    }
    hosts.push_back({host, slots, line_no});
  }
  if (hosts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no hosts (lines 'HOSTNAME slots=N')"));
  return hosts;
}

absl::StatusOr<Resources> SelectResources(const std::vector<HostSlots>& hosts, const Selection& selection,
                                          const std::string& where) {
  if (!selection.include.empty() && !selection.exclude.empty()) {
    return absl::InvalidArgumentError("--include and --exclude cannot be used together");
  }
  const bool filtered = !selection.include.empty() || !selection.exclude.empty();
  if (filtered && (selection.num_nodes >= 0 || selection.num_gpus >= 0)) {
    return absl::InvalidArgumentError(
        "--include/--exclude choose the hosts and slots themselves: leave out --num_nodes and --num_gpus");
  }
  Resources all;
  for (const HostSlots& h : hosts) {
    std::vector<int> slots(h.slots);
    for (int i = 0; i < h.slots; ++i) slots[i] = i;
    all.emplace_back(h.host, std::move(slots));
  }
  auto find = [&](const std::string& host) {
    return std::find_if(all.begin(), all.end(), [&](const auto& r) { return r.first == host; });
  };
  auto check_slots = [&](const std::string& host, const std::vector<int>& want, const std::vector<int>& have,
                         absl::string_view flag) -> absl::Status {
    for (int s : want) {
      if (std::find(have.begin(), have.end(), s) == have.end()) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": host '", host, "' has no slot ", s, " (", where,
                                                       " gives it slots 0..", have.size() - 1, ")"));
      }
    }
    return absl::OkStatus();
  };

  Resources out;
  if (!selection.include.empty()) {
    ASSIGN_OR_RETURN(auto filter, ParseFilter(selection.include, "--include"));
    std::set<std::string> named;
    for (const auto& [host, slots] : filter) {
      auto it = find(host);
      if (it == all.end()) return absl::InvalidArgumentError(UnknownHost(host, hosts, "--include", where));
      if (!named.insert(host).second) {
        return absl::InvalidArgumentError(absl::StrCat("--include: host '", host, "' is named twice"));
      }
      RETURN_IF_ERROR(check_slots(host, slots, it->second, "--include"));
    }
    // Hostfile order, as DeepSpeed keeps it: node ranks follow the hostfile.
    for (const auto& [host, have] : all) {
      auto f = std::find_if(filter.begin(), filter.end(), [&](const auto& x) { return x.first == host; });
      if (f == filter.end()) continue;
      std::vector<int> slots = f->second.empty() ? have : f->second;
      std::sort(slots.begin(), slots.end());
      slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
      out.emplace_back(host, std::move(slots));
    }
  } else if (!selection.exclude.empty()) {
    ASSIGN_OR_RETURN(auto filter, ParseFilter(selection.exclude, "--exclude"));
    for (const auto& [host, slots] : filter) {
      auto it = find(host);
      if (it == all.end()) return absl::InvalidArgumentError(UnknownHost(host, hosts, "--exclude", where));
      RETURN_IF_ERROR(check_slots(host, slots, it->second, "--exclude"));
    }
    for (const auto& [host, have] : all) {
      auto f = std::find_if(filter.begin(), filter.end(), [&](const auto& x) { return x.first == host; });
      if (f == filter.end()) {
        out.emplace_back(host, have);
        continue;
      }
      if (f->second.empty()) continue;  // the whole host
      std::vector<int> kept;
      for (int s : have) {
        if (std::find(f->second.begin(), f->second.end(), s) == f->second.end()) kept.push_back(s);
      }
      if (!kept.empty()) out.emplace_back(host, std::move(kept));
    }
  } else {
    out = all;
  }

  if (selection.num_nodes == 0 || selection.num_gpus == 0) {
    return absl::InvalidArgumentError(selection.num_nodes == 0 ? "--num_nodes must be at least 1"
                                                               : "--num_gpus must be at least 1");
  }
  if (selection.num_nodes > 0) {
    if (selection.num_nodes > static_cast<int>(out.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("--num_nodes ", selection.num_nodes, " but ", where, " lists ", out.size(), " host(s)"));
    }
    out.resize(selection.num_nodes);
  }
  if (selection.num_gpus > 0) {
    for (auto& [host, slots] : out) {
      if (selection.num_gpus > static_cast<int>(slots.size())) {
        auto h = std::find_if(hosts.begin(), hosts.end(), [&](const HostSlots& x) { return x.host == host; });
        return absl::InvalidArgumentError(
            absl::StrCat("--num_gpus ", selection.num_gpus, " but host '", host, "' has slots=", slots.size(), " (",
                         where, h != hosts.end() && h->line > 0 ? absl::StrCat(" line ", h->line) : "", ")"));
      }
      slots.resize(selection.num_gpus);
    }
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("no host of ", where, " is left to run on"));
  return out;
}

std::string EncodeResources(const Resources& resources) {
  std::vector<std::string> parts;
  for (const auto& [host, slots] : resources) parts.push_back(absl::StrCat(host, ":", absl::StrJoin(slots, ",")));
  return absl::StrJoin(parts, "@");
}

absl::StatusOr<Resources> DecodeResources(absl::string_view spec) {
  ASSIGN_OR_RETURN(auto parsed, ParseFilter(spec, "--world_info"));
  Resources out;
  for (auto& [host, slots] : parsed) {
    if (slots.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--world_info '", spec, "': host '", host, "' has no slots"));
    }
    out.emplace_back(std::move(host), std::move(slots));
  }
  return out;
}

int TotalSlots(const Resources& resources) {
  int n = 0;
  for (const auto& r : resources) n += static_cast<int>(r.second.size());
  return n;
}

}  // namespace zt::launch
