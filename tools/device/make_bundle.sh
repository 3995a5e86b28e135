#!/usr/bin/env bash
# Makes the GPU machine's toolchain bundle in .device/ from the shared bundle maker
# (../shared/device/make_device_bundle.sh) with the runtime libraries zerotrain needs on top:
# the shared bundle lists only libgloo-dev and libbenchmark-dev, whose libgloo.so and
# libbenchmark.so are links to libraries of other packages (libgloo0, libbenchmark1debian)
# that no bundled program needs, so the maker's closure leaves them out.
#
#   tools/device/make_bundle.sh          # Debian 12 build machine, as root; ~10 minutes on 2 cores
#
# Then send the checkout with `.device` carried and run `bash tools/gpu_ci.sh` there
# (docs/GPU.md).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=${ZT_SHARED_DEVICE:-$root/../shared/device}
[[ -x $shared/make_device_bundle.sh ]] || { echo "make_bundle: no $shared/make_device_bundle.sh" >&2; exit 1; }
work=$(mktemp -d /tmp/zt-bundle.XXXXXX)
cp -r "$shared/." "$work/"
chmod -R u+w "$work"
# The packages zerotrain adds to the core archive.
sed -i 's/^  nlohmann-json3-dev libgloo-dev$/  nlohmann-json3-dev libgloo-dev libgloo0 libbenchmark1debian/' "$work/make_device_bundle.sh"
grep -q 'libgloo0 libbenchmark1debian' "$work/make_device_bundle.sh" ||
  { echo "make_bundle: the shared maker's package list changed; add libgloo0 libbenchmark1debian by hand" >&2; exit 1; }
mkdir -p "$root/.device"
OUT_DIR="$root/.device" XZ_OPT_LEVEL=${XZ_OPT_LEVEL:--6} "$work/make_device_bundle.sh"
rm -rf "$work"
ls -la "$root/.device"
