// The flags of HF's run_translation.py (its ModelArguments, DataTrainingArguments and the
// Seq2SeqTrainingArguments users pass), with HF's defaults.  //nlp:t5_translate fills them from
// its command line; RunTranslation (translate.h) runs them.
#ifndef ZEROTRAIN_NLP_TRANSLATE_ARGS_H_
#define ZEROTRAIN_NLP_TRANSLATE_ARGS_H_

#include <cstdint>
#include <string>

namespace zt::nlp {

struct TranslateArgs {
  // Model and tokenizer.
  std::string model_name_or_path;            // a directory (config.json, model.safetensors, spiece.model) or a name
  std::string tokenizer_name;                // a directory or spiece.model file; default: the model's
  std::int64_t tokenizer_vocab_size = 8000;  // when a tokenizer is trained on the training text
  // Data.
  std::string dataset_name, dataset_config_name;
  std::string train_file, validation_file, test_file;
  std::string source_lang, target_lang;
  std::string source_prefix;
  bool source_prefix_set = false;
  std::int64_t max_source_length = 1024, max_target_length = 128, val_max_target_length = -1;
  std::int64_t max_train_samples = -1, max_eval_samples = -1, max_predict_samples = -1;
  bool pad_to_max_length = false;
  bool ignore_pad_token_for_loss = true;
  int preprocessing_num_workers = 1;
  // Training.
  std::string output_dir;
  bool overwrite_output_dir = false;
  bool do_train = false, do_eval = false, do_predict = false;
  std::int64_t per_device_train_batch_size = 8, per_device_eval_batch_size = 8;
  std::int64_t gradient_accumulation_steps = 1;
  double learning_rate = 5e-5, weight_decay = 0.0, adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;
  double num_train_epochs = 3.0;
  std::int64_t max_steps = -1, warmup_steps = 0;
  double warmup_ratio = 0.0;
  std::string lr_scheduler_type = "linear";
  std::int64_t logging_steps = 500, save_steps = 500, eval_steps = -1, save_total_limit = -1;
  std::string resume_from_checkpoint;  // a checkpoint-N directory, or "latest" in output_dir
  std::string eval_strategy = "no";  // no | steps (every eval_steps, default logging_steps) | epoch
  std::uint64_t seed = 42;
  bool fp16 = false, bf16 = false;
  std::string deepspeed;  // DeepSpeed JSON config
  bool use_cpu = false;   // train on the CPU (Gloo) even where GPUs are
  double peak_tflops = 0;  // the device's dense peak for MFU; 0: from the card's name
  // Generation.
  bool predict_with_generate = false;
  int num_beams = 1;
  std::int64_t generation_max_length = -1;  // default: val_max_target_length
  // The no-argument run: a small T5 on the machine's gettext catalogs, BLEU before and after.
  bool demo = false;
};

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_TRANSLATE_ARGS_H_
