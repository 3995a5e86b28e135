// Which hosts and slots a job runs on, as DeepSpeed's launcher chooses them: a hostfile
// (`hostname slots=8` lines, # comments, blank lines), then --include or --exclude, then
// --num_nodes and --num_gpus.
//
//   ASSIGN_OR_RETURN(std::vector<zt::launch::HostSlots> hosts, zt::launch::ParseHostfile(text, path));
//   zt::launch::Selection s;  s.num_gpus = 2;
//   ASSIGN_OR_RETURN(zt::launch::Resources r, zt::launch::SelectResources(hosts, s, path));
//   std::string spec = zt::launch::EncodeResources(r);   // "host1:0,1@host2:0,1"
//
// Host names are checked against a strict alphabet (letters, digits, '.', '-', '_', not starting
// with '-') because they end up in ssh/pdsh/srun/mpirun command lines.
#ifndef ZEROTRAIN_TOOLS_LAUNCHER_HOSTFILE_H_
#define ZEROTRAIN_TOOLS_LAUNCHER_HOSTFILE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zt::launch {

struct HostSlots {
  std::string host;
  int slots = 0;
  int line = 0;  // 1-based line of the hostfile, for messages
};

// Hosts in order, each with the slot indices (GPU ids, or process indices on CPU) it runs.
using Resources = std::vector<std::pair<std::string, std::vector<int>>>;

// A hostfile's hosts in file order.  Errors name `path` and the line: a line that is not
// `HOST slots=N` (N >= 1), a host listed twice, a host name with characters outside the alphabet
// above, an empty file.
absl::StatusOr<std::vector<HostSlots>> ParseHostfile(absl::string_view text, const std::string& path);

// An error naming `what` (e.g. "--master_addr") when `host` is not a plain host name or address.
absl::Status CheckHostName(absl::string_view host, absl::string_view what);

struct Selection {
  std::string include;  // DeepSpeed's --include: "host1:0,2@host2" (a host alone: all its slots)
  std::string exclude;  // --exclude, same syntax: removes slots, or the whole host
  int num_nodes = -1;   // the first N hosts; -1: all
  int num_gpus = -1;    // the first N slots of every host; -1: all
};

// Applies the selection to the hostfile's hosts.  `where` names the hostfile (or "this machine")
// in errors: --include with --exclude, either with --num_nodes/--num_gpus, an unknown host or
// slot in --include/--exclude, --num_nodes or --num_gpus above what the hosts have, nothing left.
absl::StatusOr<Resources> SelectResources(const std::vector<HostSlots>& hosts, const Selection& selection,
                                          const std::string& where);

// "host1:0,1@host2:0,1" and back: the node launchers get the job's layout in this form.
std::string EncodeResources(const Resources& resources);
absl::StatusOr<Resources> DecodeResources(absl::string_view spec);

// Number of slots over all hosts.
int TotalSlots(const Resources& resources);

}  // namespace zt::launch

#endif  // ZEROTRAIN_TOOLS_LAUNCHER_HOSTFILE_H_
