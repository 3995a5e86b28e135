// The translation job behind //nlp:t5_translate: run_translation.py's pipeline on our engine.
//
//   data (files, a local dataset copy, or the gettext default) -> SentencePiece (the model's
//   spiece.model, or one trained on the training text) -> T5 (an HF checkpoint directory, or a
//   published architecture initialised at random) -> Engine (ZeRO stage, offload, precision from
//   --deepspeed; optimizer and schedule from the flags where the config has none) -> train,
//   evaluate (loss; with --predict_with_generate also generation and sacreBLEU), predict ->
//   output_dir as HF writes it (config.json, model.safetensors, spiece.model,
//   {train,eval,predict,all}_results.json, trainer_state.json, generated_predictions.txt).
//
// Every rank runs it (RANK/WORLD_SIZE/MASTER_ADDR from the launcher); rank 0 prints and writes.
#ifndef ZEROTRAIN_NLP_TRANSLATE_TRANSLATE_H_
#define ZEROTRAIN_NLP_TRANSLATE_TRANSLATE_H_

#include "absl/status/status.h"
#include "nlp/translate/args.h"

namespace zt::nlp {

absl::Status RunTranslation(const TranslateArgs& args);

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_TRANSLATE_TRANSLATE_H_
