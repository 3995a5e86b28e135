#include "core/comm/rank_env.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<RankInfo> FromMap(const std::map<std::string, std::string>& env) {
  return RankInfoFromEnv([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(RankInfoFromEnv, NothingSetIsOneProcess) {
  auto info = FromMap({});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, 0);
  EXPECT_EQ(info->world_size, 1);
  EXPECT_EQ(info->source, "single process");
}

TEST(RankInfoFromEnv, TorchrunVariables) {
  auto info = FromMap({{"RANK", "5"},
                       {"WORLD_SIZE", "8"},
                       {"LOCAL_RANK", "1"},
                       {"LOCAL_WORLD_SIZE", "4"},
                       {"MASTER_ADDR", "node0"},
                       {"MASTER_PORT", "9901"}});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, 5);
  EXPECT_EQ(info->world_size, 8);
  EXPECT_EQ(info->local_rank, 1);
  EXPECT_EQ(info->local_world_size, 4);
  EXPECT_EQ(info->master_addr, "node0");
  EXPECT_EQ(info->master_port, 9901);
}

TEST(RankInfoFromEnv, OpenMpiVariables) {
  auto info = FromMap({{"OMPI_COMM_WORLD_RANK", "3"},
                       {"OMPI_COMM_WORLD_SIZE", "4"},
                       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                       {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                       {"MASTER_ADDR", "10.0.0.1"}});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, 3);
  EXPECT_EQ(info->local_world_size, 2);
  EXPECT_EQ(info->master_port, 29500);
  EXPECT_THAT(info->source, HasSubstr("Open MPI"));
}

TEST(RankInfoFromEnv, SlurmVariables) {
  auto info = FromMap({{"SLURM_PROCID", "6"},
                       {"SLURM_NTASKS", "8"},
                       {"SLURM_LOCALID", "2"},
                       {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                       {"MASTER_ADDR", "gpu001"}});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, 6);
  EXPECT_EQ(info->local_rank, 2);
  EXPECT_EQ(info->local_world_size, 4);
}

TEST(RankInfoFromEnv, TorchrunWinsOverSlurm) {
  auto info =
      FromMap({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"MASTER_ADDR", "h"}});
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->rank, 1);
}

TEST(RankInfoFromEnv, ErrorsNameTheVariable) {
  auto bad_int = FromMap({{"RANK", "one"}, {"WORLD_SIZE", "2"}});
  EXPECT_EQ(bad_int.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_int.status().message()), HasSubstr("RANK='one'"));

  auto half = FromMap({{"RANK", "0"}});
  EXPECT_THAT(std::string(half.status().message()), HasSubstr("WORLD_SIZE is not set"));

  auto too_big = FromMap({{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "h"}});
  EXPECT_THAT(std::string(too_big.status().message()), HasSubstr("RANK=4 is not below WORLD_SIZE=4"));

  auto no_master = FromMap({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  EXPECT_THAT(std::string(no_master.status().message()), HasSubstr("MASTER_ADDR is not set"));

  auto port = FromMap({{"MASTER_PORT", "70000"}});
  EXPECT_THAT(std::string(port.status().message()), HasSubstr("MASTER_PORT=70000"));
}

TEST(FirstSlurmHost, ExpandsTheFirstHostOfAList) {
  EXPECT_EQ(FirstSlurmHost("node01").value(), "node01");
  EXPECT_EQ(FirstSlurmHost("node[01-04,07]").value(), "node01");
  EXPECT_EQ(FirstSlurmHost("node[07,01-04]").value(), "node07");
  EXPECT_EQ(FirstSlurmHost("gpu[3,5-6]x,cpu1").value(), "gpu3x");
  EXPECT_EQ(FirstSlurmHost("a-b-c[009-012]").value(), "a-b-c009");
  EXPECT_EQ(FirstSlurmHost("host1,host2").value(), "host1");
  EXPECT_EQ(FirstSlurmHost("rack[1-2]n[04-05],other[1-3]").value(), "rack1n04");
  EXPECT_EQ(FirstSlurmHost("node[5]").value(), "node5");
}

TEST(FirstSlurmHost, MalformedListsAreInvalid) {
  for (const char* bad :
       {"", "node[01-04", "node01]", "node[[1]]", "node[]", "node[-3]", "node[a-b]", ",host2", "host1,host[2"}) {
    auto host = FirstSlurmHost(bad);
    EXPECT_EQ(host.status().code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
    EXPECT_THAT(std::string(host.status().message()), HasSubstr(absl::StrCat("'", bad, "'")));
  }
}

// What a plain `srun -N2 --ntasks-per-node=4 ./binary` gives task 5 (no MASTER_ADDR/PORT).
std::map<std::string, std::string> SrunTask5() {
  return {{"SLURM_PROCID", "5"},
          {"SLURM_NTASKS", "8"},
          {"SLURM_LOCALID", "1"},
          {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},
          {"SLURM_STEP_NODELIST", "gpu[007-008]"},
          {"SLURM_JOB_NODELIST", "gpu[001-008]"},
          {"SLURM_JOB_ID", "4242424"}};
}

TEST(RankInfoFromEnv, PlainSrunFindsRankZerosHostAndAPortFromTheJobId) {
  auto info = FromMap(SrunTask5());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rank, 5);
  EXPECT_EQ(info->world_size, 8);
  EXPECT_EQ(info->local_rank, 1);
  EXPECT_EQ(info->local_world_size, 4);
  EXPECT_EQ(info->master_addr, "gpu007");
  EXPECT_EQ(info->master_port, 15000 + 4242424 % 20000);
  EXPECT_THAT(info->source, HasSubstr("MASTER_ADDR from SLURM_STEP_NODELIST"));
  EXPECT_THAT(info->source, HasSubstr("MASTER_PORT from SLURM_JOB_ID"));
}

TEST(RankInfoFromEnv, SlurmNodeListFallsBackToTheJobsThenTheOldName) {
  auto env = SrunTask5();
  env.erase("SLURM_STEP_NODELIST");
  auto job = FromMap(env);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->master_addr, "gpu001");
  EXPECT_THAT(job->source, HasSubstr("MASTER_ADDR from SLURM_JOB_NODELIST"));

  env.erase("SLURM_JOB_NODELIST");
  env["SLURM_NODELIST"] = "cn[2-3]";
  auto old = FromMap(env);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->master_addr, "cn2");
  EXPECT_THAT(old->source, HasSubstr("MASTER_ADDR from SLURM_NODELIST"));

  env.erase("SLURM_NODELIST");
  auto none = FromMap(env);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("MASTER_ADDR is not set"));
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("SLURM_STEP_NODELIST"));
}

TEST(RankInfoFromEnv, SlurmMasterAddrAndPortGivenWin) {
  auto env = SrunTask5();
  env["MASTER_ADDR"] = "login1";
  env["MASTER_PORT"] = "6000";
  auto info = FromMap(env);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->master_addr, "login1");
  EXPECT_EQ(info->master_port, 6000);
  EXPECT_EQ(info->source, "SLURM (SLURM_PROCID/SLURM_NTASKS)");
}

TEST(RankInfoFromEnv, SlurmTasksPerNodeFallsBackToTheStepsThenTheJobs) {
  auto env = SrunTask5();
  env["SLURM_NTASKS_PER_NODE"] = "2";
  EXPECT_EQ(FromMap(env)->local_world_size, 2);
  env.erase("SLURM_NTASKS_PER_NODE");
  env["SLURM_STEP_TASKS_PER_NODE"] = "4,2";
  env["SLURM_TASKS_PER_NODE"] = "3(x2)";
  EXPECT_EQ(FromMap(env)->local_world_size, 4);
  env.erase("SLURM_STEP_TASKS_PER_NODE");
  EXPECT_EQ(FromMap(env)->local_world_size, 3);
  env.erase("SLURM_TASKS_PER_NODE");
  EXPECT_EQ(FromMap(env)->local_world_size, 8);
}

TEST(RankInfoFromEnv, NodeListAndPortAreDerivedOnlyUnderSlurm) {
  // torchrun inside an allocation: its own variables say where rank 0 is; the node list of the
  // surrounding job is no substitute.
  auto info = FromMap({{"RANK", "0"},
                       {"WORLD_SIZE", "2"},
                       {"SLURM_JOB_NODELIST", "gpu[1-2]"},
                       {"SLURM_JOB_ID", "77"},
                       {"MASTER_ADDR", "h"}});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->master_port, 29500);
  auto no_addr = FromMap({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SLURM_JOB_NODELIST", "gpu[1-2]"}});
  EXPECT_THAT(std::string(no_addr.status().message()), HasSubstr("MASTER_ADDR is not set"));
}

TEST(RankInfoFromEnv, SlurmErrorsNameTheVariableAndValue) {
  auto env = SrunTask5();
  env["SLURM_STEP_NODELIST"] = "gpu[007-008";
  auto list = FromMap(env);
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(list.status().message()), HasSubstr("SLURM_STEP_NODELIST='gpu[007-008'"));

  env["SLURM_STEP_NODELIST"] = "";
  EXPECT_THAT(std::string(FromMap(env).status().message()), HasSubstr("SLURM_STEP_NODELIST=''"));

  env = SrunTask5();
  env["SLURM_JOB_ID"] = "12x";
  auto job = FromMap(env);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("SLURM_JOB_ID='12x'"));
}

// What `torchrun --nproc_per_node=2 --no-python ./binary` gives its second worker after one
// restart.
TEST(RankInfoFromEnv, TorchrunAgentStoreMakesEveryRankAClientUnderARunPrefix) {
  auto info = FromMap({{"RANK", "1"},
                       {"WORLD_SIZE", "2"},
                       {"LOCAL_RANK", "1"},
                       {"LOCAL_WORLD_SIZE", "2"},
                       {"MASTER_ADDR", "127.0.0.1"},
                       {"MASTER_PORT", "29400"},
                       {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                       {"TORCHELASTIC_RUN_ID", "job7"},
                       {"TORCHELASTIC_RESTART_COUNT", "1"}});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->store_is_external);
  EXPECT_EQ(info->store_prefix, "zt/job7/1");
  EXPECT_THAT(info->source, HasSubstr("torchrun's agent"));
}

TEST(RankInfoFromEnv, RanksServeTheirOwnStoreUnlessTheAgentDoes) {
  auto plain = FromMap({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->store_is_external);
  EXPECT_EQ(plain->store_prefix, "");

  // torchrun with a rendezvous backend whose store the agent does not share: rank 0 serves one;
  // the run id still separates attempts, and a missing restart count is the first attempt.
  auto no_agent = FromMap({{"RANK", "0"},
                           {"WORLD_SIZE", "2"},
                           {"MASTER_ADDR", "h"},
                           {"TORCHELASTIC_USE_AGENT_STORE", "False"},
                           {"TORCHELASTIC_RUN_ID", "none"}});
  ASSERT_TRUE(no_agent.ok()) << no_agent.status();
  EXPECT_FALSE(no_agent->store_is_external);
  EXPECT_EQ(no_agent->store_prefix, "zt/none/0");

  auto bad = FromMap({{"TORCHELASTIC_RUN_ID", "r"}, {"TORCHELASTIC_RESTART_COUNT", "x"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("TORCHELASTIC_RESTART_COUNT='x'"));
}

}  // namespace
}  // namespace zt
