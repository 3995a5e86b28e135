"""External dependencies, discovered on the machine (no downloads: Bazel runs offline).

Every dependency is a repository made from what is installed, and each can be pointed
elsewhere with an environment variable:

  dependency      repository          default location                    override
  LibTorch 2.x    @libtorch           .venv's torch (./bazelw), python3's  LIBTORCH (or LIBTORCH_DIR)
  CUDA            @cuda               /usr/local/cuda                     CUDA_HOME
  NCCL            @nccl               torch's nvidia/nccl wheel, CUDA_HOME NCCL_HOME
  liburing        @liburing           <usr>                               ZT_LIBURING_PREFIX
  Abseil          @absl               <usr>                               ZT_ABSL_PREFIX
  protobuf        @protobuf           <usr> (+ its protoc)                ZT_PROTOBUF_PREFIX
  googletest      @gtest              <usr>                               ZT_GTEST_PREFIX
  Google Bench.   @benchmark          <usr>                               ZT_BENCHMARK_PREFIX
  RDKit           @rdkit              <usr>                               ZT_RDKIT_PREFIX
  SentencePiece   @sentencepiece      <usr>                               ZT_SENTENCEPIECE_PREFIX
  netCDF / HDF5   @netcdf / @hdf5     <usr>                               ZT_NETCDF_PREFIX / ZT_HDF5_PREFIX
  nlohmann-json   @nlohmann_json      <usr>                               ZT_NLOHMANN_JSON_PREFIX
  Gloo            @gloo               <usr>                               ZT_GLOO_PREFIX

<usr> is $DSB_PREFIX/usr on the GPU machine (after `source .device/setup.sh`) and /usr on a
Debian/Ubuntu machine (the -dev packages of third_party/apt-packages.txt).  A prefix has
include/ and lib/ (or lib64/, lib/x86_64-linux-gnu/).  The GPU-only dependencies (CUDA, NCCL,
LibTorch's CUDA libraries) become stubs with AVAILABLE = False in their defs.bzl when absent,
so every BUILD file still loads on a machine without them.
"""

_TRIPLET = "x86_64-linux-gnu"

def _match(name, pattern):
    """pattern: an exact name or "prefix*suffix"."""
    if "*" not in pattern:
        return name == pattern
    pre, suf = pattern.split("*", 1)
    return name.startswith(pre) and name.endswith(suf) and len(name) >= len(pre) + len(suf)

def _prefix(rctx):
    """Returns (prefix, is_system): the per-dependency override, else $DSB_PREFIX/usr, else /usr."""
    own = rctx.os.environ.get(rctx.attr.env, "").rstrip("/")
    if own:
        if not rctx.path(own).exists:
            fail("zerotrain: %s=%s does not exist" % (rctx.attr.env, own))
        return own, False
    dsb = rctx.os.environ.get("DSB_PREFIX", "").rstrip("/")
    if dsb:
        return dsb + "/usr", False
    return "/usr", True

def _libdirs(rctx, prefix):
    return [d for d in [prefix + "/lib/" + _TRIPLET, prefix + "/lib64", prefix + "/lib"] if rctx.path(d).exists]

def _headers(rctx, inc, patterns):
    out = []
    for pat in patterns:
        if "*" in pat:
            d = pat.rsplit("/", 1)[0] if "/" in pat else ""
            base = pat.rsplit("/", 1)[-1]
            for e in rctx.path(inc + ("/" + d if d else "")).readdir():
                if _match(e.basename, base):
                    out.append((d + "/" if d else "") + e.basename)
        else:
            out.append(pat)
    return out

def _hint(rctx, system):
    if system:
        return "install it: apt-get install %s (./bazelw does this), or set %s" % (
            " ".join(rctx.attr.debian_packages),
            rctx.attr.env,
        )
    return "check %s / DSB_PREFIX (on the GPU machine: source .device/setup.sh)" % rctx.attr.env

def _system_library_impl(rctx):
    prefix, system = _prefix(rctx)
    inc = prefix + "/include"
    hint = _hint(rctx, system)
    for h in _headers(rctx, inc, rctx.attr.headers):
        src = rctx.path(inc + "/" + h)
        if not src.exists:
            fail("zerotrain: %s not found (%s)" % (src, hint))

        # /usr/include is a builtin include directory of the system compiler: there a header
        # is linked in only when it needs an include path of its own (rdkit/, hdf5/serial/).
        need = not system or [i for i in rctx.attr.include_dirs if i == h or i.startswith(h + "/") or h.startswith(i + "/")]
        if need:
            rctx.symlink(src, "include/" + h)
    libdirs = _libdirs(rctx, prefix)
    globbed = []
    for pat in rctx.attr.lib_globs:
        for d in libdirs:
            for e in rctx.path(d).readdir():
                n = e.basename
                if _match(n, "lib" + pat + ".so") and n[3:-3] not in globbed:
                    globbed.append(n[3:-3])
    globbed = sorted(globbed)
    for l in rctx.attr.libs:
        if not [d for d in libdirs if rctx.path(d + "/lib" + l + ".so").exists or rctx.path(d + "/lib" + l + ".a").exists]:
            fail("zerotrain: lib%s.so not found under %s (%s)" % (l, prefix, hint))
    if rctx.attr.lib_globs and not globbed:
        fail("zerotrain: no lib%s.so under %s (%s)" % (rctx.attr.lib_globs, prefix, hint))

    # No --as-needed: Bazel 4's toolchain links with gold, which drops an --as-needed library
    # that only a cc_library's shared object uses (every cc_test) -> undefined symbols at run time.
    paths = []
    if not system:
        for d in libdirs:
            paths += ["-L" + d, "-Wl,-rpath," + d]
    tools = []
    for t in rctx.attr.tools:
        p = rctx.path(prefix + "/bin/" + t)
        if not p.exists:
            fail("zerotrain: %s not found (%s)" % (p, hint))
        rctx.symlink(p, "bin/" + t)
        tools.append("bin/" + t)
    per_lib = "".join([
        'cc_library(name = "{n}", deps = [":headers"], linkopts = ["-l{n}"])\n'.format(n = l)
        for l in globbed
    ])
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", """# generated by //third_party:repositories.bzl from {prefix}
package(default_visibility = ["//visibility:public"])

exports_files({tools})

cc_library(
    name = "headers",
    hdrs = glob(["include/**"], allow_empty = True),
    includes = {includes},
    linkopts = {paths},
)

cc_library(
    name = "{target}",
    deps = [":headers"],
    linkopts = {linkopts},
)

{per_lib}
{extra}
""".format(
        prefix = prefix,
        tools = repr(tools),
        target = rctx.attr.target,
        includes = repr(["include"] + ["include/" + i for i in rctx.attr.include_dirs]),
        paths = repr(paths),
        linkopts = repr(["-l" + l for l in rctx.attr.libs + globbed] + rctx.attr.extra_linkopts),
        per_lib = per_lib,
        extra = rctx.attr.extra_build,
    ))
    rctx.file("defs.bzl", "PREFIX = %r\nINCLUDE = %r\n" % (prefix, inc))

system_library = repository_rule(
    implementation = _system_library_impl,
    environ = ["DSB_PREFIX", "ZT_LIBURING_PREFIX", "ZT_ABSL_PREFIX", "ZT_PROTOBUF_PREFIX", "ZT_GTEST_PREFIX", "ZT_BENCHMARK_PREFIX", "ZT_RDKIT_PREFIX", "ZT_SENTENCEPIECE_PREFIX", "ZT_NETCDF_PREFIX", "ZT_HDF5_PREFIX", "ZT_NLOHMANN_JSON_PREFIX", "ZT_GLOO_PREFIX"],
    local = True,
    attrs = {
        "env": attr.string(mandatory = True, doc = "the variable that overrides the prefix"),
        "target": attr.string(mandatory = True),
        "headers": attr.string_list(doc = "paths under <prefix>/include; 'netcdf*.h' globs one level"),
        "include_dirs": attr.string_list(doc = "extra include paths under include/, e.g. rdkit"),
        "libs": attr.string_list(doc = "-l names that must exist"),
        "lib_globs": attr.string_list(doc = "link every lib<glob>.so found, e.g. absl_*"),
        "extra_linkopts": attr.string_list(),
        "tools": attr.string_list(doc = "executables under <prefix>/bin to export"),
        "extra_build": attr.string(),
        "debian_packages": attr.string_list(doc = "what to apt-get install on a Debian machine"),
    },
)

def _tree_impl(rctx):
    dsb = rctx.os.environ.get("DSB_PREFIX", "").rstrip("/")
    src = rctx.path((dsb + "/usr" if dsb else "/usr") + "/" + rctx.attr.subdir)
    if not src.exists:
        fail("zerotrain: %s not found (apt-get install bazel-rules-java; ./bazelw does this)" % src)
    for e in src.readdir():
        rctx.symlink(e, e.basename)

_tree_repository = repository_rule(
    implementation = _tree_impl,
    environ = ["DSB_PREFIX"],
    local = True,
    attrs = {"subdir": attr.string(mandatory = True)},
)

# ---- LibTorch, CUDA, NCCL ---------------------------------------------------------------

def _stub(rctx, why, targets):
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", "# stub: %s\npackage(default_visibility = [\"//visibility:public\"])\n%s" % (
        why,
        "".join(['cc_library(name = "%s")\n' % t for t in targets]),
    ))
    rctx.file("defs.bzl", "AVAILABLE = False\nCUDA = False\nWHY = %r\nHOME = ''\nNVCC = ''\nVERSION = ''\nCXX_STD = '-std=c++17'\n" % why)

def _dir_from_env(rctx, names):
    for var in names:
        d = rctx.os.environ.get(var, "").rstrip("/")
        if d:
            if not rctx.path(d).exists:
                fail("zerotrain: %s=%s does not exist" % (var, d))
            return d, var
    return "", ""

def _find_torch(rctx):
    """$LIBTORCH / $LIBTORCH_DIR, else the checkout's .venv (made by ./bazelw), else python3's torch."""
    d, var = _dir_from_env(rctx, ["LIBTORCH", "LIBTORCH_DIR"])
    if d:
        return d, "$" + var
    root = rctx.path(Label("//:WORKSPACE")).dirname
    venv_lib = root.get_child(".venv").get_child("lib")
    if venv_lib.exists:
        for py in venv_lib.readdir():
            t = py.get_child("site-packages").get_child("torch")
            if t.get_child("include").exists:
                return str(t), "the checkout's .venv"
    python = rctx.which("python3")
    if python:
        # find_spec locates the package without importing it (importing torch takes seconds).
        r = rctx.execute([python, "-c", "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')"])
        if r.return_code == 0 and r.stdout.strip():
            return r.stdout.strip(), "python3's torch package (%s)" % python
    return "", ""

def _libtorch_impl(rctx):
    d, source = _find_torch(rctx)
    if not d or not rctx.path(d + "/include/torch").exists:
        fail("zerotrain: no LibTorch found (looked at $LIBTORCH, $LIBTORCH_DIR, .venv, python3's torch%s). " % (
            ": %s has no include/torch" % d if d else ""
        ) + "Run ./bazelw (it installs the pinned torch wheel into .venv) or point LIBTORCH at an unpacked LibTorch 2.x.")
    version = ""
    vf = rctx.path(d + "/version.py")
    if vf.exists:
        for line in rctx.read(vf).splitlines():
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("'\"")
    else:
        bv = rctx.path(d + "/build-version")  # an unpacked LibTorch zip
        if bv.exists:
            version = rctx.read(bv).strip()
    major_minor = version.split("+")[0].split(".")
    if len(major_minor) < 2 or not major_minor[0].isdigit() or int(major_minor[0]) != 2:
        fail("zerotrain: LibTorch at %s (from %s) is version '%s'; LibTorch 2.x is required" % (d, source, version))

    # torch >= 2.14 headers require C++20; 2.0 .. 2.13 build with C++17.
    std = "-std=c++20" if int(major_minor[1]) >= 14 else "-std=c++17"
    lib = d + "/lib"

    # LibTorch ships the headers of its own, older protobuf (include/google/protobuf); they would
    # shadow the system protobuf's in any translation unit that sees both, so they are left out.
    for e in rctx.path(d + "/include").readdir():
        if e.basename != "google":
            rctx.symlink(e, "include/" + e.basename)

    # The wheel's libraries find the CUDA runtime wheels beside torch (site-packages/nvidia/*/lib)
    # through their own RPATH; the linker must see them too to check symbols.
    rpath_link = []
    nv = rctx.path(d).dirname.get_child("nvidia")
    if nv.exists:
        for sub in nv.readdir():
            if sub.get_child("lib").exists:
                rpath_link.append("-Wl,-rpath-link," + str(sub.get_child("lib")))
    has_cuda = rctx.path(lib + "/libtorch_cuda.so").exists
    cpu = ["-L" + lib, "-Wl,-rpath," + lib] + rpath_link + [
        "-Wl,--push-state,--no-as-needed",
        # Not -ltorch: in a CUDA build libtorch.so is a shim that loads libtorch_cuda.so.
        "-ltorch_cpu",
        "-lc10",
        "-Wl,--pop-state",
    ]
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", """# generated by //third_party:repositories.bzl: LibTorch {version} from {source}: {d}
package(default_visibility = ["//visibility:public"])

# CPU LibTorch: libtorch, libtorch_cpu, libc10.
cc_library(
    name = "torch",
    hdrs = glob(["include/**"]),
    includes = ["include", "include/torch/csrc/api/include"],
    linkopts = {cpu},
)

# + the CUDA libraries (libtorch_cuda, libc10_cuda); use only under --config=cuda.
cc_library(
    name = "torch_cuda",
    deps = [":torch", "@cuda//:cudart"],
    linkopts = {cuda},
)
""".format(
        version = version,
        source = source,
        d = d,
        cpu = repr(cpu),
        cuda = repr(["-Wl,--push-state,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-ltorch", "-Wl,--pop-state"] if has_cuda else []),
    ))
    rctx.file("defs.bzl", "AVAILABLE = True\nCUDA = %r\nHOME = %r\nVERSION = %r\nCXX_STD = %r\nWHY = ''\nNVCC = ''\n" % (has_cuda, d, version, std))

libtorch_repository = repository_rule(
    implementation = _libtorch_impl,
    environ = ["LIBTORCH", "LIBTORCH_DIR", "PATH"],
    local = True,
)

def _cuda_impl(rctx):
    d, _ = _dir_from_env(rctx, ["CUDA_HOME"])
    if not d and rctx.path("/usr/local/cuda").exists:
        d = "/usr/local/cuda"
    if not d or not rctx.path(d + "/bin/nvcc").exists:
        _stub(rctx, "no nvcc: CUDA_HOME not set and no /usr/local/cuda", ["cudart"])
        return
    rctx.symlink(d + "/include", "include")
    lib = d + "/lib64"
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", """# generated by //third_party:repositories.bzl from {d}
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "cudart",
    hdrs = glob(["include/**"]),
    includes = ["include"],
    linkopts = ["-L{lib}", "-Wl,-rpath,{lib}", "-lcudart"],
)
""".format(d = d, lib = lib))
    rctx.file("defs.bzl", "AVAILABLE = True\nHOME = %r\nNVCC = %r\nWHY = ''\n" % (d, d + "/bin/nvcc"))

cuda_repository = repository_rule(
    implementation = _cuda_impl,
    environ = ["CUDA_HOME"],
    local = True,
)

def _nccl_impl(rctx):
    d, _ = _dir_from_env(rctx, ["NCCL_HOME"])
    candidates = [d] if d else []
    if not d:
        torch, _ = _find_torch(rctx)
        if torch:
            candidates.append(str(rctx.path(torch).dirname) + "/nvidia/nccl")
        cuda, _ = _dir_from_env(rctx, ["CUDA_HOME"])
        candidates += [c for c in [cuda, "/usr/local/cuda", "/usr"] if c]
    home = ""
    for c in candidates:
        if rctx.path(c + "/include/nccl.h").exists:
            home = c
            break
    if not home:
        _stub(rctx, "no include/nccl.h in %s (set NCCL_HOME)" % candidates, ["nccl"])
        return
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.symlink(home + "/include/nccl.h", "include/nccl.h")
    libdirs = [l for l in _libdirs(rctx, home) if rctx.path(l + "/libnccl.so").exists or rctx.path(l + "/libnccl.so.2").exists]
    if not libdirs:
        _stub(rctx, "no libnccl.so.2 under %s" % home, ["nccl"])
        return
    lib = libdirs[0]
    so = "nccl" if rctx.path(lib + "/libnccl.so").exists else ":libnccl.so.2"
    rctx.file("BUILD.bazel", """# generated by //third_party:repositories.bzl from {home}
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "nccl",
    hdrs = ["include/nccl.h"],
    includes = ["include"],
    linkopts = ["-L{lib}", "-Wl,-rpath,{lib}", "-l{so}"],
    deps = ["@cuda//:cudart"],
)
""".format(home = home, lib = lib, so = so))
    rctx.file("defs.bzl", "AVAILABLE = True\nHOME = %r\nWHY = ''\n" % home)

nccl_repository = repository_rule(
    implementation = _nccl_impl,
    environ = ["NCCL_HOME", "CUDA_HOME", "LIBTORCH", "LIBTORCH_DIR", "PATH"],
    local = True,
)

# ---- shared data ---------------------------------------------------------------------------

def _shared_data_impl(rctx):
    """Public data sets for tests and benchmarks (not part of the project): $ZT_SHARED_DATA, else
    ../shared/data beside the checkout.  Tests read them from runfiles
    ($TEST_SRCDIR/shared_data/<set>/...) and skip with a reason where they are absent."""
    d, _ = _dir_from_env(rctx, ["ZT_SHARED_DATA"])
    if not d:
        default = rctx.path(Label("//:WORKSPACE")).dirname.dirname.get_child("shared").get_child("data")
        d = str(default) if default.exists else ""
    sets = []
    if d:
        for e in rctx.path(d).readdir():
            rctx.symlink(e, e.basename)
            sets.append(e.basename)
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", """# generated by //third_party:repositories.bzl from {d}
package(default_visibility = ["//visibility:public"])
{groups}""".format(
        d = d or "(not found: set ZT_SHARED_DATA)",
        groups = "".join([
            'filegroup(name = "{s}", srcs = glob(["{s}/**"], allow_empty = True))\n'.format(s = s)
            for s in ["wmt16_en_ro", "ro_sts_en_ro"]
        ]),
    ))

shared_data_repository = repository_rule(
    implementation = _shared_data_impl,
    environ = ["ZT_SHARED_DATA"],
    local = True,
)

# ---- all of them --------------------------------------------------------------------------

def zerotrain_repositories():
    """Declares @rules_java (offline) and every C++ dependency repository."""

    # Bazel 4.2.3 would download rules_java; Debian's bazel-rules-java ships it.
    _tree_repository(name = "rules_java", subdir = "share/bazel/rules/java")

    system_library(
        name = "liburing",
        env = "ZT_LIBURING_PREFIX",
        target = "liburing",
        headers = ["liburing.h", "liburing"],
        libs = ["uring"],
        debian_packages = ["liburing-dev"],
    )
    system_library(
        name = "absl",
        env = "ZT_ABSL_PREFIX",
        target = "absl",
        headers = ["absl"],
        lib_globs = ["absl_*"],
        debian_packages = ["libabsl-dev"],
    )
    system_library(
        name = "protobuf",
        env = "ZT_PROTOBUF_PREFIX",
        target = "protobuf",
        headers = ["google/protobuf"],
        libs = ["protobuf"],
        extra_linkopts = ["-pthread"],
        tools = ["protoc"],
        debian_packages = ["libprotobuf-dev", "protobuf-compiler"],
    )
    system_library(
        name = "sentencepiece",
        env = "ZT_SENTENCEPIECE_PREFIX",
        target = "sentencepiece",
        headers = ["sentencepiece_processor.h", "sentencepiece_trainer.h"],
        libs = ["sentencepiece", "sentencepiece_train"],
        debian_packages = ["libsentencepiece-dev"],
    )
    system_library(
        name = "gtest",
        env = "ZT_GTEST_PREFIX",
        target = "gtest",
        headers = ["gtest", "gmock"],
        libs = ["gmock", "gtest"],
        extra_linkopts = ["-pthread"],
        extra_build = """
cc_library(name = "gtest_main", deps = [":gtest"], linkopts = ["-lgtest_main"])
cc_library(name = "gmock_main", deps = [":gtest"], linkopts = ["-lgmock_main"])
""",
        debian_packages = ["libgtest-dev", "libgmock-dev"],
    )
    system_library(
        name = "benchmark",
        env = "ZT_BENCHMARK_PREFIX",
        target = "benchmark",
        headers = ["benchmark"],
        libs = ["benchmark"],
        extra_linkopts = ["-pthread"],
        extra_build = """
cc_library(name = "benchmark_main", deps = [":benchmark"], linkopts = ["-lbenchmark_main"])
""",
        debian_packages = ["libbenchmark-dev"],
    )
    system_library(
        name = "rdkit",
        env = "ZT_RDKIT_PREFIX",
        target = "rdkit",
        headers = ["rdkit", "boost"],
        include_dirs = ["rdkit"],
        lib_globs = ["RDKit*"],
        debian_packages = ["librdkit-dev", "libboost-dev"],
    )
    system_library(
        name = "netcdf",
        env = "ZT_NETCDF_PREFIX",
        target = "netcdf",
        headers = ["netcdf*.h"],
        libs = ["netcdf"],
        debian_packages = ["libnetcdf-dev"],
    )
    system_library(
        name = "hdf5",
        env = "ZT_HDF5_PREFIX",
        target = "hdf5",
        headers = ["hdf5/serial"],
        include_dirs = ["hdf5/serial"],
        libs = ["hdf5_serial", "hdf5_serial_hl"],
        debian_packages = ["libhdf5-dev"],
    )
    system_library(
        name = "gloo",
        env = "ZT_GLOO_PREFIX",
        target = "gloo",
        headers = ["gloo"],
        libs = ["gloo"],
        extra_linkopts = ["-pthread"],
        debian_packages = ["libgloo-dev"],
    )
    system_library(
        name = "nlohmann_json",
        env = "ZT_NLOHMANN_JSON_PREFIX",
        target = "nlohmann_json",
        headers = ["nlohmann"],
        debian_packages = ["nlohmann-json3-dev"],
    )
    libtorch_repository(name = "libtorch")
    cuda_repository(name = "cuda")
    nccl_repository(name = "nccl")
    shared_data_repository(name = "shared_data")
