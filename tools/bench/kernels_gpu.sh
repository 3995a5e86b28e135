#!/usr/bin/env bash
# The fused kernels on the GPU machine, as docs/GPU.md and BENCHMARKS.md record them.  Run from
# the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/kernels_gpu.sh [--quick]
#
# 1. The kernels' reference tests and the T5 / engine GPU tests under --config=cuda.
# 2. t5_bench (t5-large at random, bf16, source 512 / target 128, batch 16, ZeRO-2, one GPU)
#    with every fused kernel, then with each one switched back to its reference (ZT_FUSED_ADAM,
#    ZT_RMS_NORM, ZT_CROSS_ENTROPY, ZT_T5_ATTENTION, ZT_DROPOUT, ZT_ACCUMULATE, ZT_LINEAR, ZT_LINEARS),
#    attention through the earlier fused 16-bit softmax (ZT_T5_ATTENTION=fused16) and LibTorch's
#    fused SDPA (ZT_T5_ATTENTION=sdpa), all references, then with the optimizer offloaded to the
#    CPU; and the T5 attention kernels alone beside HF's attention as ATen ops and LibTorch's
#    SDPA (bias_attention_benchmark).
# 3. The peer on the same card and shape: HF's T5ForConditionalGeneration with fused AdamW and
#    bf16 autocast, eager and under torch.compile (tools/bench/peers/t5_hf.py).
# --quick stops after 2.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
bazel test -c opt --config=cuda --test_output=errors --test_env=ZT_LOG_LEVEL=warning \
  //ops/cuda:fused_adam_cuda_test //ops/cuda:rms_norm_cuda_test //ops/cuda:cross_entropy_cuda_test \
  //ops/cuda:pair_bias_attention_cuda_test //ops/cuda:bias_attention_cuda_test //ops/cuda:dropout_cuda_test \
  //ops/cuda:accumulate_cuda_test //ops:linear_test //nlp/t5:t5_model_gpu_test //core/engine:engine_gpu_test ||
  fail "the GPU tests"
bazel build -c opt --config=cuda //tools/bench:t5_bench //ops/cuda:bias_attention_benchmark || exit 1
bin=bazel-out/k8-opt/bin
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
shape=(--model t5-large --batch 16 --src_len 512 --tgt_len 128 --steps 10 --warmup 3)
export ZT_LOG_LEVEL=warning
bench() {  # [VAR=value ...]: the switches back to references
  echo "== ${*:-every fused kernel (the default)}"
  env "$@" "$bin/tools/bench/t5_bench" "${shape[@]}" --bf16 --stage 2 || fail "t5_bench $*"
}
bench
bench ZT_FUSED_ADAM=off
bench ZT_RMS_NORM=reference
bench ZT_CROSS_ENTROPY=reference
bench ZT_T5_ATTENTION=reference
bench ZT_T5_ATTENTION=fused16
bench ZT_T5_ATTENTION=sdpa
bench ZT_DROPOUT=reference
bench ZT_ACCUMULATE=reference
bench ZT_LINEAR=reference
bench ZT_LINEARS=reference
bench ZT_FUSED_ADAM=off ZT_RMS_NORM=reference ZT_CROSS_ENTROPY=reference ZT_T5_ATTENTION=reference ZT_DROPOUT=reference \
  ZT_ACCUMULATE=reference ZT_LINEAR=reference ZT_LINEARS=reference
echo "== ZeRO-2 + CPU optimizer offload"
"$bin/tools/bench/t5_bench" "${shape[@]}" --bf16 --stage 2 --offload_optimizer || fail "t5_bench offload"
echo "== the T5 attention kernels alone"
"$bin/ops/cuda/bias_attention_benchmark" || fail "bias_attention_benchmark"
if [[ ${1:-} != --quick ]]; then
  python3 tools/bench/peers/t5_hf.py "${shape[@]}" || fail "HF eager"
  python3 tools/bench/peers/t5_hf.py "${shape[@]}" --compile || fail "HF compile"
fi
echo "kernels_gpu: $failures failure(s)"
exit $((failures > 0))
