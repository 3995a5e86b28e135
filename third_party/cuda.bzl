"""cuda_library: a cc_library from .cu files compiled by nvcc ($CUDA_HOME or /usr/local/cuda).

nvcc runs in a genrule (Bazel 4 has no CUDA rules); its objects join a cc_library.  Targets
get the tag `gpu`, so they are built only under --config=cuda (or --config=cuda_compile on CI).
Where no nvcc is found the library is empty (see @cuda//:defs.bzl).
"""

load("@cuda//:defs.bzl", "NVCC", CUDA_AVAILABLE = "AVAILABLE")

# Hopper (H100/H200): SASS for sm_90 plus PTX for newer parts.
NVCC_FLAGS = [
    "-O3",
    "-std=c++17",
    "-Xcompiler=-fPIC",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_90,code=compute_90",
]

def cuda_library(name, srcs, hdrs = [], deps = [], nvcc_flags = NVCC_FLAGS, tags = [], **kwargs):
    tags = tags + ["gpu"]
    if not CUDA_AVAILABLE:
        native.cc_library(name = name, hdrs = hdrs, tags = tags, **kwargs)
        return
    objs = []
    for s in srcs:
        o = "_%s_%s.o" % (name, s.replace("/", "_").rsplit(".", 1)[0])
        native.genrule(
            name = o[:-2] + "_nvcc",
            srcs = [s] + hdrs,
            outs = [o],
            # -objtemp: intermediates beside the object, not in /tmp, where two sandboxed
            # nvcc runs (both PID 2 in their namespaces) chose the same temporary names.
            cmd = "%s %s -objtemp -I. -I$(GENDIR) -c $(location %s) -o $@" % (NVCC, " ".join(nvcc_flags), s),
            tags = tags + ["nvcc"],
        )
        objs.append(o)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart"],
        tags = tags,
        **kwargs
    )
