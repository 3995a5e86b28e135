#!/usr/bin/env bash
# Checkpoints of a CUDA job on the GPU machine, as docs/GPU.md records them.  Run from the
# repository root after `source .device/setup.sh` (ZT_SHARED_DATA names the WMT16 copy):
#
#   bash tools/bench/checkpoint_gpu.sh
#
# 1. t5_translate (t5-small at random, bf16, the seed's ZeRO-3 config with CPU offload, 2 GPUs
#    through //tools:launch, dropout on) saves checkpoint-20 and checkpoint-40; a run resumed
#    from checkpoint-20 must end with the same weights (byte for byte) and the same log history.
# 2. The same checkpoint resumed by 1 GPU at ZeRO-2 (another world size and stage).
# 3. //tools:zero_to_fp32 of checkpoint-40: HF transformers' T5ForConditionalGeneration
#    .from_pretrained loads it with no missing or unexpected weights, every fp32 weight rounds to
#    the bf16 weight zerotrain exported, and the two models' losses on a batch agree.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bazel build -c opt --config=cuda //tools:launch //nlp:t5_translate //tools:zero_to_fp32 || exit 1
bin=$PWD/bazel-out/k8-opt/bin
configs=$PWD/core/config/testdata
gpus=$(nvidia-smi -L | grep -c '^GPU ')
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
w=$(mktemp -d)
mkdir -p "$w/data"
ln -s "$ZT_SHARED_DATA/wmt16_en_ro" "$w/data/wmt16_en_ro"
cd "$w" || exit 1
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
common=(--model_name_or_path t5-small --do_train --bf16 --per_device_train_batch_size 16 --max_train_samples 2000
  --num_train_epochs 1 --max_steps 40 --dataset_name wmt16 --dataset_config ro-en --source_lang en --target_lang ro
  --logging_steps 10 --tokenizer_vocab_size 8000 --learning_rate 1e-3 --max_source_length 128
  --max_target_length 128 --save_steps 20 --overwrite_output_dir)
job() {  # job NUM_GPUS CONFIG OUT [ARGS...]
  local n=$1 config=$2 out=$3
  shift 3
  local t0=$SECONDS
  ZT_LOG_LEVEL=warning timeout 500 "$bin/tools/launch" --num_gpus "$n" "$bin/nlp/t5_translate" --deepspeed "$config" \
    --output_dir "$out" "${common[@]}" "$@" >"$out.log" 2>&1
  local rc=$?
  grep -E "engine:|resumed from|'loss'|train:|error" "$out.log" | cut -c1-200
  echo "rc=$rc ($((SECONDS - t0)) s)"
  return $rc
}

n=$((gpus >= 2 ? 2 : 1))
echo "== $n GPU(s), ZeRO-3 + offload: uninterrupted, 40 steps, checkpoints at 20 and 40"
job "$n" "$configs/ds_config_zero3.json" whole || fail "the uninterrupted run"
du -sh whole/checkpoint-20 whole/checkpoint-20/global_step20 2>/dev/null
echo "== $n GPU(s): resumed from checkpoint-20"
job "$n" "$configs/ds_config_zero3.json" resumed --resume_from_checkpoint whole/checkpoint-20 || fail "the resumed run"
if cmp -s whole/model.safetensors resumed/model.safetensors; then
  echo "final weights: identical (byte for byte)"
else
  fail "the final weights differ"
fi
python3 - whole resumed <<'PY' || fail "the log histories differ"
import json, sys
a, b = (json.load(open(f"{d}/trainer_state.json"))["log_history"] for d in sys.argv[1:])
print("log history:", "identical" if a == b else "differs", [e.get("loss") for e in a], [e.get("loss") for e in b])
sys.exit(0 if a == b else 1)
PY

echo "== 1 GPU, ZeRO-2: resumed from the $n-GPU ZeRO-3 checkpoint-20"
job 1 "$configs/ds_config_zero2.json" universal --resume_from_checkpoint whole/checkpoint-20 || fail "the 1-GPU resume"

echo "== zero_to_fp32 whole/checkpoint-40 -> fp32/ ; HF from_pretrained"
timed=()
[[ -x /usr/bin/time ]] && timed=(/usr/bin/time -f "zero_to_fp32: %e s, peak RSS %M KiB")
"${timed[@]}" "$bin/tools/zero_to_fp32" whole/checkpoint-40 fp32 || fail "zero_to_fp32"
ls -la fp32
python3 - fp32 whole/checkpoint-40 <<'PY' || fail "HF could not use the converted checkpoint"
import sys, torch
from safetensors.torch import load_file
from transformers import T5ForConditionalGeneration
fp32_dir, exported = sys.argv[1:]
model, info = T5ForConditionalGeneration.from_pretrained(fp32_dir, output_loading_info=True)
print("from_pretrained:", {k: v for k, v in info.items() if v})
assert not info["missing_keys"] and not info["unexpected_keys"], info
a, b = load_file(f"{fp32_dir}/model.safetensors"), load_file(f"{exported}/model.safetensors")
assert a.keys() == b.keys(), (sorted(a.keys() ^ b.keys()))
bad = [k for k in a if a[k].dtype != torch.float32 or not torch.equal(a[k].to(torch.bfloat16), b[k])]
print(f"{len(a)} tensors, {sum(t.numel() for t in a.values())} parameters in fp32; rounding to bf16 gives the exported weights:",
      "all" if not bad else f"not {bad[:5]}")
assert not bad
bf16 = T5ForConditionalGeneration.from_pretrained(exported)
torch.manual_seed(0)
ids = torch.randint(0, model.config.vocab_size, (4, 32))
labels = torch.randint(0, model.config.vocab_size, (4, 16))
with torch.no_grad():
    l32 = model(input_ids=ids, labels=labels).loss.item()
    l16 = bf16.float()(input_ids=ids, labels=labels).loss.item()
print(f"loss on a random batch: fp32 master weights {l32:.5f}, exported bf16 weights {l16:.5f}")
assert abs(l32 - l16) < 0.05 * abs(l16)
print("generate:", model.generate(ids[:1], max_new_tokens=8).tolist())
PY
echo "checkpoint_gpu: $failures failure(s)"
exit $((failures > 0))
