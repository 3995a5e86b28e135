#include "core/util/logging.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::ContainsRegex;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

class CaptureSink : public LogSink {
 public:
  void Write(LogSeverity, const std::string& line) override { lines.push_back(line); }
  std::vector<std::string> lines;
};

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_ = SetLogSink(&sink_);
    old_min_ = MinLogSeverity();
    SetMinLogSeverity(LogSeverity::kInfo);  // whatever ZT_LOG_LEVEL the test runs under
  }
  void TearDown() override {
    SetLogSink(old_);
    SetMinLogSeverity(old_min_);
    SetLogRank(-1);
  }
  CaptureSink sink_;
  LogSink* old_ = nullptr;
  LogSeverity old_min_ = LogSeverity::kInfo;
};

TEST_F(LoggingTest, OneLineWithSeverityFileAndLine) {
  ZT_LOG(WARNING) << "disk " << 3 << " is slow";
  ASSERT_EQ(sink_.lines.size(), 1u);
  EXPECT_THAT(sink_.lines[0], ContainsRegex("^W[0-9]{4} [0-9:.]+ logging_test.cc:[0-9]+\\] disk 3 is slow\n$"));
}

TEST_F(LoggingTest, RankTagAppearsOnceSet) {
  SetLogRank(3);
  ZT_LOG(INFO) << "hello";
  ASSERT_EQ(sink_.lines.size(), 1u);
  EXPECT_THAT(sink_.lines[0], HasSubstr(" rank3 logging_test.cc:"));
}

TEST_F(LoggingTest, BelowMinimumSeverityIsNotPrintedNorEvaluated) {
  SetMinLogSeverity(LogSeverity::kWarning);
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  ZT_LOG(INFO) << "quiet " << count();
  ZT_LOG(ERROR) << "loud " << count();
  ASSERT_EQ(sink_.lines.size(), 1u);
  EXPECT_THAT(sink_.lines[0], HasSubstr("loud 1"));
  EXPECT_EQ(evaluated, 1);
}

TEST_F(LoggingTest, FirstPrintsOnlyOnce) {
  for (int i = 0; i < 5; ++i) {
    ZT_LOG_FIRST(WARNING) << "fallback in use, i=" << i;
  }
  ASSERT_EQ(sink_.lines.size(), 1u);
  EXPECT_THAT(sink_.lines[0], EndsWith("fallback in use, i=0\n"));
}

TEST_F(LoggingTest, ConcurrentLinesStayWhole) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 100; ++i) ZT_LOG(INFO) << "thread " << t << " line " << i;
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(sink_.lines.size(), 400u);
  for (const auto& l : sink_.lines) EXPECT_THAT(l, ContainsRegex("\\] thread [0-3] line [0-9]+\n$"));
}

TEST(ParseLogSeverity, AcceptsNamesAndRejectsOthers) {
  LogSeverity s = LogSeverity::kInfo;
  EXPECT_TRUE(ParseLogSeverity("DEBUG", &s));
  EXPECT_EQ(s, LogSeverity::kDebug);
  EXPECT_TRUE(ParseLogSeverity("warn", &s));
  EXPECT_EQ(s, LogSeverity::kWarning);
  EXPECT_FALSE(ParseLogSeverity("verbose", &s));
  EXPECT_EQ(s, LogSeverity::kWarning);
}

}  // namespace
}  // namespace zt
