#include <string>

#include "gtest/gtest.h"
#include "tests/toolchain/sample.pb.h"

namespace {

TEST(CcProto, GeneratedMessageRoundTrips) {
  zt::toolchain::Sample in;
  in.set_name("layer.0.weight");
  in.add_shape(1024);
  in.add_shape(4096);
  in.mutable_created()->set_seconds(1795824000);
  std::string wire;
  ASSERT_TRUE(in.SerializeToString(&wire));
  zt::toolchain::Sample out;
  ASSERT_TRUE(out.ParseFromString(wire));
  EXPECT_EQ(out.name(), "layer.0.weight");
  ASSERT_EQ(out.shape_size(), 2);
  EXPECT_EQ(out.shape(1), 4096);
  EXPECT_EQ(out.created().seconds(), 1795824000);
}

}  // namespace
