#include "core/comm/agreement.h"

#include "absl/strings/match.h"
#include "core/comm/local_group.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

TEST(Fingerprint, DependsOnContentAndOrder) {
  EXPECT_EQ(Fingerprint().Add("w").Add(3).value(), Fingerprint().Add("w").Add(3).value());
  EXPECT_NE(Fingerprint().Add("w").Add(3).value(), Fingerprint().Add("w").Add(4).value());
  EXPECT_NE(Fingerprint().Add("a").Add("b").value(), Fingerprint().Add("b").Add("a").value());
}

TEST(CheckAgreement, PassesWhenRanksAgree) {
  absl::Status s = RunOnRanks(3, [](Communicator& comm) { return CheckAgreement(comm, 42, 7, "model parameters"); });
  EXPECT_TRUE(s.ok()) << s;
}

TEST(CheckAgreement, EveryRankFailsWhenOneDiffers) {
  absl::Status s = RunOnRanks(3, [](Communicator& comm) -> absl::Status {
    absl::Status st = CheckAgreement(comm, comm.rank() == 2 ? 43 : 42, comm.rank() == 2 ? 6 : 7, "model parameters");
    if (st.code() != absl::StatusCode::kFailedPrecondition) return absl::InternalError("expected a failure");
    if (!absl::StrContains(st.message(), "rank 2: 6 (fingerprint"))
      return absl::InternalError(std::string(st.message()));
    if (!absl::StrContains(st.message(), "model parameters differ across ranks")) {
      return absl::InternalError(std::string(st.message()));
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace zt
