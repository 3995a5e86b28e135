// //nlp:t5_translate: HF run_translation.py's command line on zerotrain.
//
//   bazel run //nlp:t5_translate -- --deepspeed ds_config_zero2.json --model_name_or_path t5-large
//       --do_train --do_eval --per_device_train_batch_size 4 --output_dir output_dir
//     --overwrite_output_dir --max_train_samples 500 --num_train_epochs 1
//     --dataset_name wmt16 --dataset_config "ro-en" --source_lang en --target_lang ro
//
// With no arguments: a small T5 trained for a few minutes on the machine's gettext catalogs
// (English->Romanian), BLEU before and after, outputs in ./t5_translate_output.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "nlp/translate/args.h"
#include "nlp/translate/translate.h"

// Model / tokenizer.
ABSL_FLAG(std::string, model_name_or_path, "",
          "HF model directory (config.json, model.safetensors, spiece.model) or an architecture name (t5-small ... "
          "t5-11b, google/t5-v1_1-*, google/flan-t5-*), initialised at random");
ABSL_FLAG(std::string, tokenizer_name, "", "spiece.model or a directory holding one (default: the model's)");
ABSL_FLAG(int64_t, tokenizer_vocab_size, 8000,
          "pieces of the tokenizer trained on the training text when there is no spiece.model");
// Data.
ABSL_FLAG(std::string, dataset_name, "",
          "dataset name (e.g. wmt16); read from a local copy, a split given as a file replaces its");
ABSL_FLAG(std::string, dataset_config_name, "", "dataset configuration (e.g. ro-en)");
ABSL_FLAG(std::string, dataset_config, "", "alias of --dataset_config_name (argparse accepts the prefix)");
ABSL_FLAG(std::string, train_file, "", "JSON lines {\"translation\": {src: ..., tgt: ...}}");
ABSL_FLAG(std::string, validation_file, "", "JSON lines, as --train_file");
ABSL_FLAG(std::string, test_file, "", "JSON lines, as --train_file");
ABSL_FLAG(std::string, source_lang, "", "source language code, e.g. en");
ABSL_FLAG(std::string, target_lang, "", "target language code, e.g. ro");
ABSL_FLAG(std::string, source_prefix, "\x01",
          "prefix of every source text (T5 default: \"translate English to Romanian: \")");
ABSL_FLAG(int64_t, max_source_length, 1024, "source tokens kept (after the prefix)");
ABSL_FLAG(int64_t, max_target_length, 128, "target tokens kept in training");
ABSL_FLAG(int64_t, val_max_target_length, -1, "target tokens kept in evaluation (default max_target_length)");
ABSL_FLAG(int64_t, max_train_samples, -1, "first N training pairs");
ABSL_FLAG(int64_t, max_eval_samples, -1, "first N validation pairs");
ABSL_FLAG(int64_t, max_predict_samples, -1, "first N test pairs");
ABSL_FLAG(bool, pad_to_max_length, false, "pad every batch to the max lengths");
ABSL_FLAG(bool, ignore_pad_token_for_loss, true, "padded labels do not count in the loss");
ABSL_FLAG(int32_t, preprocessing_num_workers, 1,
          "accepted for compatibility; tokenisation is fast and single-threaded");
ABSL_FLAG(bool, overwrite_cache, false, "accepted for compatibility (there is no cache)");
// Training.
ABSL_FLAG(std::string, output_dir, "", "where the model, results and predictions go");
ABSL_FLAG(bool, overwrite_output_dir, false, "train into a non-empty output_dir");
ABSL_FLAG(bool, do_train, false, "train");
ABSL_FLAG(bool, do_eval, false, "evaluate on the validation set");
ABSL_FLAG(bool, do_predict, false, "predict the test set");
ABSL_FLAG(int64_t, per_device_train_batch_size, 8, "micro-batch per rank");
ABSL_FLAG(int64_t, per_device_eval_batch_size, 8, "evaluation batch");
ABSL_FLAG(int64_t, gradient_accumulation_steps, 1, "micro-batches per update");
ABSL_FLAG(double, learning_rate, 5e-5, "peak learning rate");
ABSL_FLAG(double, weight_decay, 0.0, "AdamW weight decay");
ABSL_FLAG(double, adam_beta1, 0.9, "AdamW beta1");
ABSL_FLAG(double, adam_beta2, 0.999, "AdamW beta2");
ABSL_FLAG(double, adam_epsilon, 1e-8, "AdamW epsilon");
ABSL_FLAG(double, max_grad_norm, 1.0, "gradient clipping");
ABSL_FLAG(double, num_train_epochs, 3.0, "epochs");
ABSL_FLAG(int64_t, max_steps, -1, "update steps (overrides num_train_epochs)");
ABSL_FLAG(int64_t, warmup_steps, 0, "linear warmup steps");
ABSL_FLAG(double, warmup_ratio, 0.0, "warmup as a fraction of the steps");
ABSL_FLAG(std::string, lr_scheduler_type, "linear",
          "linear | cosine | constant | constant_with_warmup (when the DeepSpeed config has no scheduler)");
ABSL_FLAG(int64_t, logging_steps, 500, "log every N updates");
ABSL_FLAG(int64_t, save_steps, 500,
          "write output_dir/checkpoint-N (HF model, tokenizer and the engine's full state) every N updates; 0: none");
ABSL_FLAG(int64_t, save_total_limit, -1, "keep only the newest N checkpoint-N directories");
ABSL_FLAG(std::string, resume_from_checkpoint, "",
          "continue training from a checkpoint-N directory, or from the newest one in --output_dir with \"latest\"");
ABSL_FLAG(std::string, eval_strategy, "no", "no | steps | epoch: evaluate during training (with --do_eval)");
ABSL_FLAG(std::string, evaluation_strategy, "", "older name of --eval_strategy");
ABSL_FLAG(int64_t, eval_steps, -1, "with --eval_strategy steps: every N updates (default logging_steps)");
ABSL_FLAG(uint64_t, seed, 42, "initialisation and shuffling seed");
ABSL_FLAG(bool, fp16, false, "fp16 mixed precision (fills the config's \"auto\")");
ABSL_FLAG(bool, bf16, false, "bf16 mixed precision (fills the config's \"auto\")");
ABSL_FLAG(std::string, deepspeed, "", "DeepSpeed JSON config (ZeRO stage, offload, precision, optimizer, scheduler)");
ABSL_FLAG(bool, use_cpu, false, "train on the CPU (Gloo backend) even where there are GPUs");
ABSL_FLAG(double, peak_tflops, 0,
          "the device's dense bf16/fp16 peak TFLOPS for the MFU figures (0: from the GPU's name; none on a CPU)");
ABSL_FLAG(bool, no_cuda, false, "older name of --use_cpu");
ABSL_FLAG(int32_t, local_rank, -1, "set by DeepSpeed's launcher; ranks come from RANK/LOCAL_RANK");
// Generation.
ABSL_FLAG(bool, predict_with_generate, false, "evaluate and predict by generating (BLEU, gen_len)");
ABSL_FLAG(int32_t, num_beams, 1, "beams for generation (1: greedy)");
ABSL_FLAG(int64_t, generation_max_length, -1, "tokens generated at most (default val_max_target_length)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("T5 translation: HF run_translation.py's flags on the zerotrain engine");
  const bool no_args = argc == 1;
  absl::ParseCommandLine(argc, argv);
  zt::nlp::TranslateArgs a;
  a.model_name_or_path = absl::GetFlag(FLAGS_model_name_or_path);
  a.tokenizer_name = absl::GetFlag(FLAGS_tokenizer_name);
  a.tokenizer_vocab_size = absl::GetFlag(FLAGS_tokenizer_vocab_size);
  a.dataset_name = absl::GetFlag(FLAGS_dataset_name);
  a.dataset_config_name = absl::GetFlag(FLAGS_dataset_config_name);
  if (a.dataset_config_name.empty()) a.dataset_config_name = absl::GetFlag(FLAGS_dataset_config);
  a.train_file = absl::GetFlag(FLAGS_train_file);
  a.validation_file = absl::GetFlag(FLAGS_validation_file);
  a.test_file = absl::GetFlag(FLAGS_test_file);
  a.source_lang = absl::GetFlag(FLAGS_source_lang);
  a.target_lang = absl::GetFlag(FLAGS_target_lang);
  a.source_prefix = absl::GetFlag(FLAGS_source_prefix);
  a.source_prefix_set = a.source_prefix != "\x01";
  a.max_source_length = absl::GetFlag(FLAGS_max_source_length);
  a.max_target_length = absl::GetFlag(FLAGS_max_target_length);
  a.val_max_target_length = absl::GetFlag(FLAGS_val_max_target_length);
  a.max_train_samples = absl::GetFlag(FLAGS_max_train_samples);
  a.max_eval_samples = absl::GetFlag(FLAGS_max_eval_samples);
  a.max_predict_samples = absl::GetFlag(FLAGS_max_predict_samples);
  a.pad_to_max_length = absl::GetFlag(FLAGS_pad_to_max_length);
  a.ignore_pad_token_for_loss = absl::GetFlag(FLAGS_ignore_pad_token_for_loss);
  a.preprocessing_num_workers = absl::GetFlag(FLAGS_preprocessing_num_workers);
  a.output_dir = absl::GetFlag(FLAGS_output_dir);
  a.overwrite_output_dir = absl::GetFlag(FLAGS_overwrite_output_dir);
  a.do_train = absl::GetFlag(FLAGS_do_train);
  a.do_eval = absl::GetFlag(FLAGS_do_eval);
  a.do_predict = absl::GetFlag(FLAGS_do_predict);
  a.per_device_train_batch_size = absl::GetFlag(FLAGS_per_device_train_batch_size);
  a.per_device_eval_batch_size = absl::GetFlag(FLAGS_per_device_eval_batch_size);
  a.gradient_accumulation_steps = absl::GetFlag(FLAGS_gradient_accumulation_steps);
  a.learning_rate = absl::GetFlag(FLAGS_learning_rate);
  a.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  a.adam_beta1 = absl::GetFlag(FLAGS_adam_beta1);
  a.adam_beta2 = absl::GetFlag(FLAGS_adam_beta2);
  a.adam_epsilon = absl::GetFlag(FLAGS_adam_epsilon);
  a.max_grad_norm = absl::GetFlag(FLAGS_max_grad_norm);
  a.num_train_epochs = absl::GetFlag(FLAGS_num_train_epochs);
  a.max_steps = absl::GetFlag(FLAGS_max_steps);
  a.warmup_steps = absl::GetFlag(FLAGS_warmup_steps);
  a.warmup_ratio = absl::GetFlag(FLAGS_warmup_ratio);
  a.lr_scheduler_type = absl::GetFlag(FLAGS_lr_scheduler_type);
  a.logging_steps = absl::GetFlag(FLAGS_logging_steps);
  a.save_steps = absl::GetFlag(FLAGS_save_steps);
  a.eval_steps = absl::GetFlag(FLAGS_eval_steps);
  a.save_total_limit = absl::GetFlag(FLAGS_save_total_limit);
  a.resume_from_checkpoint = absl::GetFlag(FLAGS_resume_from_checkpoint);
  a.eval_strategy = absl::GetFlag(FLAGS_evaluation_strategy).empty() ? absl::GetFlag(FLAGS_eval_strategy)
                                                                     : absl::GetFlag(FLAGS_evaluation_strategy);
  a.seed = absl::GetFlag(FLAGS_seed);
  a.peak_tflops = absl::GetFlag(FLAGS_peak_tflops);
  a.fp16 = absl::GetFlag(FLAGS_fp16);
  a.bf16 = absl::GetFlag(FLAGS_bf16);
  a.deepspeed = absl::GetFlag(FLAGS_deepspeed);
  a.use_cpu = absl::GetFlag(FLAGS_use_cpu) || absl::GetFlag(FLAGS_no_cuda);
  a.predict_with_generate = absl::GetFlag(FLAGS_predict_with_generate);
  a.num_beams = absl::GetFlag(FLAGS_num_beams);
  a.generation_max_length = absl::GetFlag(FLAGS_generation_max_length);
  if (no_args) {
    a.demo = true;
    a.do_train = a.do_eval = a.predict_with_generate = a.overwrite_output_dir = true;
    a.output_dir = "t5_translate_output";
    a.source_lang = "en";
    a.target_lang = "ro";
    a.tokenizer_vocab_size = 4000;
    a.num_train_epochs = 1;
    a.per_device_train_batch_size = 32;
    a.per_device_eval_batch_size = 50;
    a.learning_rate = 1e-3;
    a.warmup_steps = 50;
    a.logging_steps = 100;
    a.max_source_length = a.max_target_length = 64;
    a.max_eval_samples = 200;
    a.save_steps = 0;
    std::fprintf(stderr,
                 "t5_translate with no arguments: a small T5 learns English->Romanian from this machine's gettext "
                 "catalogs for a few minutes (see --help for run_translation.py's flags).\n");
  }
  const absl::Status s = zt::nlp::RunTranslation(a);
  if (!s.ok()) {
    std::fprintf(stderr, "t5_translate: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
