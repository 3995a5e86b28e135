"""cc_proto: C++ code from .proto files, made by the protoc that matches the protobuf headers
(/usr/bin/protoc on Debian, $DSB_PREFIX/usr/bin/protoc on the GPU machine)."""

load("@protobuf//:defs.bzl", "INCLUDE")

def cc_proto(name, srcs, deps = [], **kwargs):
    """srcs: .proto files of this package.  Makes cc_library `name` from <src>.pb.{h,cc}."""
    stems = [s[:-len(".proto")] for s in srcs]
    native.genrule(
        name = name + "_protoc",
        srcs = srcs,
        outs = [s + ".pb.h" for s in stems] + [s + ".pb.cc" for s in stems],
        tools = ["@protobuf//:bin/protoc"],
        cmd = "$(location @protobuf//:bin/protoc) -I. -I%s --cpp_out=$(GENDIR) $(SRCS)" % INCLUDE,
    )
    native.cc_library(
        name = name,
        srcs = [s + ".pb.cc" for s in stems],
        hdrs = [s + ".pb.h" for s in stems],
        deps = deps + ["@protobuf//:protobuf"],
        **kwargs
    )
