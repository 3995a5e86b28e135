#!/usr/bin/env bash
# ClimaX-style training on one GPU at ClimaX's resolutions, as BENCHMARKS.md and docs/GPU.md
# record it.  Run on the GPU machine from the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/climate_gpu.sh
#
# //tools/bench:climax_bench (ours, ZeRO-2 and ZeRO-3, bf16) beside tools/bench/peers/climax_torch.py
# (PyTorch eager and torch.compile) on synthetic fields: 5 variables, embed 1024, 8 blocks, on
# the 5.625° grid (32 x 64, patch 2) and the 1.40625° grid (128 x 256, patch 4); then
# //science:climate_train on libncarg-data's fields when ZT_NUG_DIR names a copy of them.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bazel build -c opt --config=cuda //tools/bench:climax_bench //science:climate_train || exit 1
bin=bazel-out/k8-opt/bin
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
export ZT_LOG_LEVEL=warning
for grid in "--height 32 --width 64 --patch 2 --batch 32" "--height 128 --width 256 --patch 4 --batch 16"; do
  # shellcheck disable=SC2086
  for stage in 2 3; do "$bin/tools/bench/climax_bench" $grid --stage $stage; done
  # shellcheck disable=SC2086
  python3 tools/bench/peers/climax_torch.py $grid
  # shellcheck disable=SC2086
  python3 tools/bench/peers/climax_torch.py $grid --compile 2>&1 | tail -2
done
if [[ -n ${ZT_NUG_DIR:-} ]]; then
  n=$ZT_NUG_DIR
  "$bin/science/climate_train" --files "$n/tas_rectilinear_grid_2D.nc,$n/uas_rectilinear_grid_2D.nc,$n/vas_rectilinear_grid_2D.nc" \
    --variables tas,uas,vas --bf16 --batch_size 1 --epochs 30 --output_dir "$(mktemp -d)" --overwrite_output_dir 2>&1 |
    grep -E "^(data|split|model|engine|epoch (1|30)/|test)"
fi
