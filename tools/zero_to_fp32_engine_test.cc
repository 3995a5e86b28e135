// zero_to_fp32 on checkpoints the engine wrote: 2 ranks (threads, Gloo) train the test MLP at
// fp32 for a few steps at ZeRO stages 1-3, save, and the converted model.safetensors holds the
// engine's final parameters bit for bit, under the export names, beside the saved config.json.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/ckpt/safetensors.h"
#include "core/comm/local_group.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/engine/test_models.h"
#include "core/util/status_macros.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/zero_to_fp32_lib.h"

namespace zt::tools {
namespace {

using ::zt::testing::Slurp;

class ZeroToFp32Engine : public ::testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

TEST_P(ZeroToFp32Engine, ConvertedModelIsTheTrainedParameters) {
  const int stage = GetParam();
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/stage", stage);
  ASSERT_OK_AND_ASSIGN(
      Config config,
      Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1,
          "optimizer": {"type": "AdamW", "params": {"lr": 0.01, "weight_decay": 0.01}},
          "zero_optimization": {"stage": )",
                                    stage, R"(, "stage3_param_persistence_threshold": 10}})"),
                       "ds_config.json", {}));
  const std::string config_json = R"({"model_type": "mlp"})";
  std::map<std::string, at::Tensor> trained;  // rank 0's parameters after training
  std::mutex mu;
  const absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    std::shared_ptr<Model> model = testing::MakeMlp(/*seed=*/1, 8, 16, 4);
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, borrowed));
    for (int step = 0; step < 3; ++step) {
      const Batch b = testing::MlpBatch(/*seed=*/10 * step + comm.rank(), 2, 8, 4);
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(b));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
    }
    SaveCheckpointOptions save;
    save.files = {{"config.json", config_json}};
    std::map<std::string, std::string> names;
    for (const auto& item : model->named_parameters()) names[item.key()] = "";
    save.export_names = {{names.begin()->first, "renamed.first"}};
    RETURN_IF_ERROR(engine->SaveCheckpoint(dir, save));
    ASSIGN_OR_RETURN(auto scope, engine->GatherParameters());
    if (comm.rank() == 0) {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& item : model->named_parameters()) {
        trained[item.key() == names.begin()->first ? "renamed.first" : item.key()] =
            item.value().detach().to(at::kFloat).clone();
      }
    }
    RETURN_IF_ERROR(scope->Release());
    return engine->Shutdown();
  });
  ASSERT_OK(s);

  ASSERT_OK_AND_ASSIGN(ZeroToFp32Result r, ConvertZeroToFp32(dir, dir + "_fp32"));
  EXPECT_EQ(r.global_step, 3);
  EXPECT_EQ(r.tensors, trained.size());
  ASSERT_OK_AND_ASSIGN(ckpt::Safetensors st, ckpt::ReadSafetensors(r.output_file));
  ASSERT_EQ(st.tensors.size(), trained.size());
  for (const auto& [name, want] : trained) {
    const at::Tensor* got = st.Find(name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(got->sizes(), want.sizes()) << name;
    EXPECT_TRUE(at::equal(*got, want)) << name << " differs by " << (*got - want).abs().max().item<double>();
  }
  EXPECT_EQ(Slurp(dir + "_fp32/config.json"), config_json);
}

INSTANTIATE_TEST_SUITE_P(Stages, ZeroToFp32Engine, ::testing::Values(1, 2, 3),
                         [](const ::testing::TestParamInfo<int>& p) { return absl::StrCat("stage", p.param); });

}  // namespace
}  // namespace zt::tools
