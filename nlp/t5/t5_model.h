// T5ForConditionalGeneration as HF's transformers computes it, on LibTorch, trained by the
// engine (a zt::Model).  Parameter names match HF's state dict once the stage-3 unit wrappers'
// ".module" segments are dropped (HfName), so HF checkpoints load and save as they are.
//
//   ASSIGN_OR_RETURN(zt::nlp::T5Config config, zt::nlp::ReadT5Config(dir + "/config.json"));
//   auto model = std::make_shared<zt::nlp::T5ForConditionalGeneration>(config, /*seed=*/42);
//   RETURN_IF_ERROR(model->LoadHfCheckpoint(dir + "/model.safetensors"));
//   at::Tensor loss = model->Forward({{"input_ids", ids}, {"attention_mask", mask}, {"labels", labels}});
//
// Numerics follow HF: RMS layer norm with the variance in fp32 (then cast to the weight's dtype
// when that is 16-bit), no 1/sqrt(d_kv) scaling of attention scores, softmax in fp32, relative
// position buckets (bidirectional in the encoder, causal in the decoder) whose bias only the
// first block of each stack owns and the others reuse, the decoder's output scaled by
// d_model^-0.5 before a tied head (t5; not v1.1 / flan-t5, whose head is untied), dropout in
// training mode, loss = cross entropy over labels with -100 ignored.  Each encoder and decoder
// block is a stage-3 unit; the shared embedding, final norms and head are persistent.
#ifndef ZEROTRAIN_NLP_T5_T5_MODEL_H_
#define ZEROTRAIN_NLP_T5_T5_MODEL_H_

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/engine/model.h"
#include "core/zero/unit.h"
#include "nlp/t5/t5_config.h"

namespace zt::nlp {

namespace t5 {
class EncoderBlock;
class DecoderBlock;
class Weight;
class LayerNorm;
}  // namespace t5

// HF generate()'s settings that translation uses (greedy or beam search, no sampling).
struct GenerateOptions {
  std::int64_t max_length = 20;  // output tokens, the decoder start token included (HF's max_length)
  int num_beams = 1;
  double length_penalty = 1.0;  // beam scores are sum(log p) / generated_length^length_penalty
  // HF's early_stopping: kTrue ends a sentence's search once num_beams hypotheses finished; kFalse
  // once the best running beam cannot beat the worst finished one at the current length; kNever
  // (with length_penalty > 0) at max_length.
  enum class EarlyStopping { kFalse, kTrue, kNever } early_stopping = EarlyStopping::kFalse;
};

class T5ForConditionalGeneration : public Model {
 public:
  // Random initialisation as HF's _init_weights, deterministic from `seed` (LibTorch's global
  // generator is reseeded; callers that share it across threads serialise construction).
  T5ForConditionalGeneration(const T5Config& config, std::uint64_t seed);

  // Batch: input_ids [B, S] (int64), attention_mask [B, S] (optional, 1 = token), labels [B, T]
  // (-100 = ignored), decoder_input_ids [B, T] (optional; else labels shifted right).
  at::Tensor Forward(const Batch& batch) override;
  // Samples, source + target positions, and T5TrainingFlops of the batch's shapes.
  BatchWork Work(const Batch& batch) const override {
    const at::Tensor& ids = BatchTensor(batch, "input_ids");
    const at::Tensor& labels = BatchTensor(batch, "labels");
    BatchWork w;
    w.samples = ids.size(0);
    w.tokens = ids.numel() + labels.numel();
    w.flops = T5TrainingFlops(config_, static_cast<double>(ids.size(0)), static_cast<double>(ids.size(1)),
                              static_cast<double>(labels.size(1)));
    return w;
  }
  // The head's logits [B, T, vocab] for the same inputs.
  at::Tensor Logits(const Batch& batch);

  // Encoder output [B, S, d_model].
  at::Tensor Encode(const at::Tensor& input_ids, const at::Tensor& attention_mask);
  // Logits [B, T, vocab] of the decoder over `decoder_input_ids` given the encoder's output.
  at::Tensor Decode(const at::Tensor& decoder_input_ids, const at::Tensor& encoder_out,
                    const at::Tensor& attention_mask);
  // The decoder's output before the head [B, T, d_model] (final norm and dropout applied).
  at::Tensor DecoderHidden(const at::Tensor& decoder_input_ids, const at::Tensor& encoder_out,
                           const at::Tensor& attention_mask);

  // Token ids [B, L <= max_length] as HF's generate() returns them for encoder-decoder models:
  // decoder_start_token_id first, then the generated tokens, </s>, and padding.  Incremental
  // decoding with a key/value cache per decoder block (cross-attention keys and values computed
  // once).  Runs without autograd in eval mode; at stage 3, call it inside
  // Engine::GatherParameters() (it uses the blocks directly, not through their units).
  at::Tensor Generate(const at::Tensor& input_ids, const at::Tensor& attention_mask, const GenerateOptions& options);

  // labels shifted one to the right behind decoder_start_token_id, -100 replaced by pad.
  at::Tensor ShiftRight(const at::Tensor& labels) const;

  const T5Config& config() const { return config_; }

  // HF's name for one of our parameter names (the ".module" of unit wrappers dropped).
  static std::string HfName(const std::string& name);
  // Our parameters under HF's names.
  std::vector<std::pair<std::string, at::Tensor>> HfStateDict() const;
  // Copies every parameter from an HF model.safetensors (converting dtype); errors name the
  // file and the tensor missing or of the wrong shape.  Tensors the model does not use are
  // listed in one warning.
  absl::Status LoadHfCheckpoint(const std::string& path);
  // Writes config.json and model.safetensors (fp32 or the parameters' dtype) into `dir`.
  absl::Status SaveHfCheckpoint(const std::string& dir) const;

 private:
  struct DecodeState;
  at::Tensor Head(const at::Tensor& decoder_out);
  // The decoder's output as the head takes it (scaled by d_model^-0.5 when tied).
  at::Tensor HeadInput(const at::Tensor& decoder_out) const;
  // DecoderHidden for a training batch.
  at::Tensor Hidden(const Batch& batch);
  DecodeState StartDecoding(const at::Tensor& encoder_out, const at::Tensor& attention_mask);
  // Logits [N, vocab] (fp32) of the next token after `tokens` [N], extending the cache.
  at::Tensor DecodeStep(DecodeState& state, const at::Tensor& tokens);
  at::Tensor Greedy(DecodeState& state, std::int64_t batch, const GenerateOptions& options);
  at::Tensor BeamSearch(DecodeState& state, std::int64_t batch, const GenerateOptions& options);

  T5Config config_;
  std::shared_ptr<t5::Weight> shared_;
  std::vector<std::shared_ptr<Unit<t5::EncoderBlock>>> encoder_blocks_;
  std::vector<std::shared_ptr<Unit<t5::DecoderBlock>>> decoder_blocks_;
  std::shared_ptr<t5::LayerNorm> encoder_norm_, decoder_norm_;
  std::shared_ptr<t5::Weight> lm_head_;  // null when tied to shared_
};

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_T5_T5_MODEL_H_
