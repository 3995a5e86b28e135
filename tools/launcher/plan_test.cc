#include "tools/launcher/plan.h"

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::launch {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

Options Parse(const std::vector<std::string>& args) {
  auto o = ParseArgs(args);
  EXPECT_TRUE(o.ok()) << o.status();
  return o.ok() ? *o : Options{};
}

TEST(ParseArgs, TheSeedsMultiNodeCommand) {
  const Options o = Parse({"--num_gpus", "8", "--num_nodes", "2", "--hostfile", "hostfile", "--master_addr",
                           "hostname1", "--master_port=9901", "your_program.py", "--deepspeed", "ds_config.json"});
  EXPECT_EQ(o.selection.num_gpus, 8);
  EXPECT_EQ(o.selection.num_nodes, 2);
  EXPECT_EQ(o.hostfile, "hostfile");
  EXPECT_EQ(o.master_addr, "hostname1");
  EXPECT_EQ(o.master_port, 9901);
  EXPECT_THAT(o.program, ElementsAre("your_program.py", "--deepspeed", "ds_config.json"));
}

TEST(ParseArgs, ProgramFlagsAreNotTheLaunchers) {
  const Options o = Parse({"--num_procs=2", "prog", "--num_gpus", "3", "--", "x"});
  EXPECT_EQ(o.num_procs, 2);
  EXPECT_EQ(o.selection.num_gpus, -1);
  EXPECT_THAT(o.program, ElementsAre("prog", "--num_gpus", "3", "--", "x"));
  EXPECT_THAT(Parse({"--", "--weird-program"}).program, ElementsAre("--weird-program"));
}

TEST(ParseArgs, ErrorsSayWhatIsWrong) {
  EXPECT_THAT(
      ParseArgs({"--num_gpu", "2", "p"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown option --num_gpu (did you mean --num_gpus?)")));
  EXPECT_THAT(ParseArgs({"--num_gpus", "two", "p"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--num_gpus 'two': want a whole number")));
  EXPECT_THAT(ParseArgs({"--master_port", "70000", "p"}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ParseArgs({"--num_gpus"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
  EXPECT_THAT(ParseArgs({"--num_gpus", "2"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no PROGRAM")));
  EXPECT_THAT(ParseArgs({"--launcher", "mvapich", "p"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ssh, pdsh, slurm and mpirun")));
  EXPECT_THAT(ParseArgs({"--elastic_training", "p"}),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("elastic training is not supported")));
  EXPECT_THAT(ParseArgs({"--num_procs", "2", "--num_gpus", "2", "p"}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ParseArgs({"--no_ssh", "p"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--node_rank")));
  EXPECT_THAT(ParseArgs({"--master_addr", "a;b", "p"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--master_addr")));
  EXPECT_THAT(ParseArgs({"--force_multi=yes", "p"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no value")));
}

TEST(RankEnv, NumbersRanksInHostOrder) {
  Job job;
  job.resources = {{"a", {0, 1}}, {"b", {2, 3, 5}}};
  job.master_addr = "a";
  job.master_port = 9901;
  EXPECT_THAT(RankEnv(job, 1, 2, {}),
              ElementsAre(Pair("RANK", "4"), Pair("LOCAL_RANK", "2"), Pair("WORLD_SIZE", "5"),
                          Pair("LOCAL_WORLD_SIZE", "3"), Pair("NODE_RANK", "1"), Pair("MASTER_ADDR", "a"),
                          Pair("MASTER_PORT", "9901"), Pair("CUDA_VISIBLE_DEVICES", "2,3,5")));
  // Slots index the user's CUDA_VISIBLE_DEVICES on one machine.
  Job local;
  local.resources = {{"localhost", {1, 2}}};
  EXPECT_THAT(RankEnv(local, 0, 0, {"GPU-aaa", "GPU-bbb", "GPU-ccc"}),
              Contains(Pair("CUDA_VISIBLE_DEVICES", "GPU-bbb,GPU-ccc")));
  local.cpu = true;
  for (const auto& kv : RankEnv(local, 0, 1, {})) EXPECT_NE(kv.first, "CUDA_VISIBLE_DEVICES");
}

TEST(RankArgv, PythonScriptsRunAsDeepSpeedRunsThem) {
  Options o = Parse({"train.py", "--lr", "1"});
  EXPECT_THAT(RankArgv(o, "/usr/bin/python3", 3),
              ElementsAre("/usr/bin/python3", "-u", "train.py", "--local_rank=3", "--lr", "1"));
  o.no_local_rank = true;
  EXPECT_THAT(RankArgv(o, "py", 3), ElementsAre("py", "-u", "train.py", "--lr", "1"));
  Options m = Parse({"--module", "pkg.train", "x"});
  EXPECT_THAT(RankArgv(m, "py", 0), ElementsAre("py", "-u", "-m", "pkg.train", "--local_rank=0", "x"));
  Options bin = Parse({"/bin/trainer", "--x"});
  EXPECT_THAT(RankArgv(bin, "py", 1), ElementsAre("/bin/trainer", "--x"));
  Options direct = Parse({"--no_python", "tool.py"});
  EXPECT_THAT(RankArgv(direct, "py", 1), ElementsAre("tool.py"));
}

TEST(SplitWords, WhitespaceSeparatesQuotesGroup) {
  EXPECT_THAT(SplitWords("  -c opt --config='my cfg' \"a b\"''  "), ElementsAre("-c", "opt", "--config=my cfg", "a b"));
  EXPECT_THAT(SplitWords("''"), ElementsAre(""));
  EXPECT_TRUE(SplitWords("   ").empty());
}

TEST(ShellQuote, SurvivesEveryCharacter) {
  EXPECT_EQ(ShellQuote("plain"), "'plain'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("$(rm -rf ~);`x`|&>"), "'$(rm -rf ~);`x`|&>'");
  EXPECT_EQ(ShellQuote(""), "''");
}

TEST(NodeCommand, QuotesEveryWord) {
  Job job;
  job.resources = {{"h1", {0, 1}}, {"h2", {0, 1}}};
  job.master_addr = "h1";
  job.master_port = 9901;
  Options o = Parse({"/bin/train", "--out", "a b;touch /tmp/x", "it's"});
  const std::string cmd = NodeCommand(job, o, "/opt/launch", "/work dir", {{"NCCL_DEBUG", "INFO"}}, "1", true);
  EXPECT_EQ(
      cmd,
      "cd '/work dir' && export 'NCCL_DEBUG=INFO' && exec '/opt/launch' '--node_rank=1' '--world_info=h1:0,1@h2:0,1' "
      "'--master_addr=h1' '--master_port=9901' '--stop_grace=5' --watch_stdin --watch_output -- '/bin/train' '--out' "
      "'a b;touch /tmp/x' 'it'\\''s'");
}

TEST(ForwardedEnv, TakesTheJobsVariablesOnly) {
  const EnvList env = ForwardedEnv({"NCCL_IB_DISABLE=1", "HOME=/root", "CUDA_VISIBLE_DEVICES=0", "ZT_LOG_LEVEL=info",
                                    "LD_LIBRARY_PATH=/x", "PYTHONPATH=/p", "SECRET=1"},
                                   {{"FOO", "bar"}});
  EXPECT_THAT(env, ElementsAre(Pair("FOO", "bar"), Pair("LD_LIBRARY_PATH", "/x"), Pair("NCCL_IB_DISABLE", "1"),
                               Pair("PYTHONPATH", "/p"), Pair("ZT_LOG_LEVEL", "info")));
}

TEST(ParseEnvFile, DeepSpeedsFormat) {
  auto env = ParseEnvFile("# c\nNCCL_DEBUG=INFO\n\nPATH=/a:/b=c\n", ".deepspeed_env");
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_THAT(*env, ElementsAre(Pair("NCCL_DEBUG", "INFO"), Pair("PATH", "/a:/b=c")));
  EXPECT_THAT(ParseEnvFile("OK=1\nnot a var\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f:2: 'not a var' is not NAME=VALUE")));
  EXPECT_THAT(ParseEnvFile("A;B=1\n", "f"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(LauncherCommands, SshPdshSrunMpirun) {
  Job job;
  job.resources = {{"h1", {0, 1}}, {"h2", {0, 1}}};
  job.master_addr = "h1";
  Options o = Parse({"--launcher_args", "-F 'my cfg'", "--ssh_port", "2222", "/bin/train"});
  EXPECT_THAT(
      SshArgv("/usr/bin/ssh", o, "h2", "CMD"),
      ElementsAre("/usr/bin/ssh", "-F", "my cfg", "-p", "2222", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o",
                  "ServerAliveInterval=30", "-o", "ServerAliveCountMax=4", "h2", "CMD"));
  Options plain = Parse({"/bin/train"});
  EXPECT_THAT(PdshArgv("pdsh", plain, job, "CMD"), ElementsAre("pdsh", "-S", "-f", "1024", "-w", "h1,h2", "CMD"));
  auto srun = SrunArgv("srun", plain, job, {"/bin/train", "--x"});
  ASSERT_TRUE(srun.ok()) << srun.status();
  EXPECT_THAT(*srun, ElementsAre("srun", "--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--nodelist=h1,h2",
                                 "--kill-on-bad-exit=1", "--label", "/bin/train", "--x"));
  auto mpi = MpirunArgv("mpirun", plain, job, {{"NCCL_DEBUG", "INFO"}}, {"/bin/train"});
  ASSERT_TRUE(mpi.ok()) << mpi.status();
  EXPECT_THAT(*mpi, ElementsAre("mpirun", "-n", "4", "--host", "h1:2,h2:2", "--npernode", "2", "--tag-output", "-x",
                                "NCCL_DEBUG=INFO", "-x", "MASTER_ADDR=h1", "-x", "MASTER_PORT=29500", "-x",
                                "CUDA_VISIBLE_DEVICES=0,1", "/bin/train"));
  Job uneven = job;
  uneven.resources[1].second = {0};
  EXPECT_THAT(SrunArgv("srun", plain, uneven, {"/bin/train"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("same number of ranks on every host")));
  Job other_gpus = job;
  other_gpus.resources[1].second = {2, 3};
  EXPECT_THAT(MpirunArgv("mpirun", plain, other_gpus, {}, {"/bin/train"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the same GPUs on every host")));
}

}  // namespace
}  // namespace zt::launch
