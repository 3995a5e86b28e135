#include "core/comm/rank_env.h"

#include <map>
#include <string>

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

}  // namespace
}  // namespace zt
