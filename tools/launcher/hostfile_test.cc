#include "tools/launcher/hostfile.h"

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::launch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr char kSeedHostfile[] =
    "# DeepSpeed hostfile format, as in the seed article: host and its GPU slots\n"
    "hostname1 slots=8\n"
    "\n"
    "hostname2  slots=8   # second node\n";

std::vector<HostSlots> Hosts(const std::string& text) {
  auto h = ParseHostfile(text, "hf");
  EXPECT_TRUE(h.ok()) << h.status();
  return h.ok() ? *h : std::vector<HostSlots>{};
}

TEST(ParseHostfile, ReadsDeepSpeedsFormat) {
  const std::vector<HostSlots> hosts = Hosts(kSeedHostfile);
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_EQ(hosts[0].host, "hostname1");
  EXPECT_EQ(hosts[0].slots, 8);
  EXPECT_EQ(hosts[0].line, 2);
  EXPECT_EQ(hosts[1].host, "hostname2");
  EXPECT_EQ(hosts[1].line, 4);
}

TEST(ParseHostfile, RejectsMalformedLinesNamingFileAndLine) {
  EXPECT_THAT(ParseHostfile("a slots=2\nb slots 2\n", "hf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hf:2: 'b slots 2' is not 'HOSTNAME slots=N'")));
  EXPECT_THAT(ParseHostfile("a slots=0\n", "hf"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hf:1")));
  EXPECT_THAT(ParseHostfile("a slots=x\n", "hf"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hf:1")));
  EXPECT_THAT(ParseHostfile("a slots=2 extra\n", "hf"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(
      ParseHostfile("a slots=2\na slots=4\n", "hf"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hf:2: host 'a' is listed twice (first on line 1)")));
  EXPECT_THAT(ParseHostfile("# only a comment\n\n", "hf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hf: no hosts")));
}

TEST(ParseHostfile, RejectsHostNamesAShellWouldInterpret) {
  for (const char* bad : {"a;rm$IFS-rf slots=1", "$(reboot) slots=1", "-oProxyCommand=x slots=1", "a`id` slots=1",
                          "a|b slots=1", "a&b slots=1", "'a' slots=1", "a\\b slots=1", "a>b slots=1"}) {
    EXPECT_THAT(ParseHostfile(bad, "hf"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a host name or IPv4 address")))
        << bad;
  }
  EXPECT_TRUE(ParseHostfile("node-01.cluster_a slots=1\n10.0.0.7 slots=2", "hf").ok());
}

TEST(SelectResources, AllSlotsByDefault) {
  auto r = SelectResources(Hosts("a slots=2\nb slots=3"), {}, "hf");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(Pair("a", ElementsAre(0, 1)), Pair("b", ElementsAre(0, 1, 2))));
  EXPECT_EQ(TotalSlots(*r), 5);
}

TEST(SelectResources, NumNodesAndNumGpusTakeTheFirst) {
  Selection s;
  s.num_nodes = 1;
  s.num_gpus = 2;
  auto r = SelectResources(Hosts("a slots=4\nb slots=4"), s, "hf");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(Pair("a", ElementsAre(0, 1))));
}

TEST(SelectResources, MoreGpusOrNodesThanTheHostfileHasIsAnError) {
  Selection s;
  s.num_gpus = 8;
  EXPECT_THAT(
      SelectResources(Hosts("a slots=8\nb slots=4"), s, "hf"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--num_gpus 8 but host 'b' has slots=4 (hf line 2)")));
  Selection n;
  n.num_nodes = 3;
  EXPECT_THAT(SelectResources(Hosts("a slots=8\nb slots=4"), n, "hf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--num_nodes 3 but hf lists 2 host(s)")));
}

TEST(SelectResources, IncludeKeepsHostfileOrderAndNamedSlots) {
  Selection s;
  s.include = "c@a:1,3";
  auto r = SelectResources(Hosts("a slots=4\nb slots=4\nc slots=2"), s, "hf");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(Pair("a", ElementsAre(1, 3)), Pair("c", ElementsAre(0, 1))));
}

TEST(SelectResources, ExcludeDropsSlotsOrWholeHosts) {
  Selection s;
  s.exclude = "a:0@b";
  auto r = SelectResources(Hosts("a slots=3\nb slots=4\nc slots=1"), s, "hf");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre(Pair("a", ElementsAre(1, 2)), Pair("c", ElementsAre(0))));
}

TEST(SelectResources, FilterErrorsNameTheHostOrSlot) {
  const auto hosts = Hosts("worker-1 slots=2\nworker-2 slots=2");
  Selection unknown;
  unknown.include = "worker-3";
  EXPECT_THAT(SelectResources(hosts, unknown, "hf"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--include: host 'worker-3' is not in hf (hosts: worker-1, worker-2); did you mean")));
  Selection slot;
  slot.exclude = "worker-1:5";
  EXPECT_THAT(SelectResources(hosts, slot, "hf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host 'worker-1' has no slot 5")));
  Selection both;
  both.include = "worker-1";
  both.exclude = "worker-2";
  EXPECT_THAT(SelectResources(hosts, both, "hf"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  Selection mixed;
  mixed.include = "worker-1";
  mixed.num_gpus = 1;
  EXPECT_THAT(SelectResources(hosts, mixed, "hf"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  Selection everything;
  everything.exclude = "worker-1@worker-2";
  EXPECT_THAT(SelectResources(hosts, everything, "hf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no host of hf is left")));
  Selection injected;
  injected.include = "worker-1;id";
  EXPECT_THAT(SelectResources(hosts, injected, "hf"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(Resources, EncodeDecodeRoundTrip) {
  const Resources r = {{"a", {0, 2}}, {"b.example", {1}}};
  EXPECT_EQ(EncodeResources(r), "a:0,2@b.example:1");
  auto back = DecodeResources(EncodeResources(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);
  EXPECT_FALSE(DecodeResources("a@b:1").ok());
  EXPECT_FALSE(DecodeResources("a:x").ok());
}

}  // namespace
}  // namespace zt::launch
