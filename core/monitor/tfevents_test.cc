#include "core/monitor/tfevents.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::monitor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::SizeIs;
using zt::testing::FreshTestDir;
using zt::testing::ListDirNames;
using zt::testing::Slurp;

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// An event file with the version record and three scalars at fixed wall times.
std::string WriteThreeScalars(const std::string& logdir) {
  auto writer = EventFileWriter::Create(logdir);
  EXPECT_OK(writer);
  if (!writer.ok()) return "";
  EXPECT_OK(writer->AddScalar("Train/Samples/train_loss", 2.5f, 8, 1000.25));
  EXPECT_OK(writer->AddScalar("Train/Samples/lr", 1e-3f, 8, 1000.5));
  EXPECT_OK(writer->AddScalar("Train/Samples/train_loss", 2.25f, 16, 1001.75));
  EXPECT_OK(writer->Close());
  return writer->path();
}

TEST(MaskedCrc32c, MatchesHandComputedValue) {
  // CRC-32C("123456789") = 0xe3069283 (the check value); rotated right 15 bits and plus the delta.
  EXPECT_EQ(MaskedCrc32c("123456789"), 0xc78ab0e5u);
  const uint32_t crc = 0xe3069283u;
  EXPECT_EQ(MaskedCrc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(EventFileWriter, FramesARecordByteForByte) {
  // Event{wall_time: 1.5, step: 3, summary {value {tag: "a", simple_value: 2}}}, encoded by hand
  // (and confirmed equal to TensorBoard's own event_pb2 serialization): 23 bytes.
  const std::string data(
      "\x09\x00\x00\x00\x00\x00\x00\xf8\x3f"  // 1: double 1.5
      "\x10\x03"                              // 2: varint 3
      "\x2a\x0a"                              // 5: Summary, 10 bytes
      "\x0a\x08"                              //   1: Value, 8 bytes
      "\x0a\x01\x61"                          //     1: tag "a"
      "\x15\x00\x00\x00\x40",                 //     2: float 2.0
      23);
  // Length 23 little-endian; masked CRC-32C of those 8 bytes (CRC 0xf207be3a) and of the data
  // (CRC 0x99087d5b), computed with a bitwise CRC-32C and equal to TensorBoard's masked_crc32c.
  const std::string expected =
      std::string("\x17\x00\x00\x00\x00\x00\x00\x00", 8) + "\xe7\xce\xf8\x1e" + data + "\xe8\x1c\x3a\x9d";
  EXPECT_EQ(EncodeRecord(data), expected);

  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(EventFileWriter writer, EventFileWriter::Create(dir));
  const std::size_t version_record_size = Slurp(writer.path()).size();
  ASSERT_OK(writer.AddScalar("a", 2.0f, 3, 1.5));
  ASSERT_OK(writer.Close());
  EXPECT_EQ(Slurp(writer.path()).substr(version_record_size), expected);
}

TEST(EventFileWriter, RoundTripsThroughReadEventFile) {
  const std::string dir = FreshTestDir() + "/runs/job";  // Create makes the directories
  const double before = WallTimeNow();
  const std::string path = WriteThreeScalars(dir);
  const double after = WallTimeNow();

  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(path));
  ASSERT_THAT(events, SizeIs(4));
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[0].step(), 0);
  EXPECT_GE(events[0].wall_time(), before);
  EXPECT_LE(events[0].wall_time(), after);

  struct Want {
    const char* tag;
    float value;
    int64_t step;
    double wall_time;
  };
  const Want want[] = {{"Train/Samples/train_loss", 2.5f, 8, 1000.25},
                       {"Train/Samples/lr", 1e-3f, 8, 1000.5},
                       {"Train/Samples/train_loss", 2.25f, 16, 1001.75}};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const tb::Event& e = events[i + 1];
    ASSERT_TRUE(e.has_summary());
    ASSERT_THAT(e.summary().value(), SizeIs(1));
    EXPECT_EQ(e.summary().value(0).tag(), want[i].tag);
    EXPECT_EQ(e.summary().value(0).simple_value(), want[i].value);
    EXPECT_EQ(e.step(), want[i].step);
    EXPECT_EQ(e.wall_time(), want[i].wall_time);
  }
}

TEST(EventFileWriter, NamesTheFileLikeTensorFlow) {
  const std::string dir = FreshTestDir();
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  ASSERT_OK_AND_ASSIGN(EventFileWriter a, EventFileWriter::Create(dir));
  ASSERT_OK_AND_ASSIGN(EventFileWriter b, EventFileWriter::Create(dir, ".v2"));
  const std::string name =
      absl::StrCat("events\\.out\\.tfevents\\.[0-9]{10}\\.", absl::StrReplaceAll(host, {{".", "\\."}}));
  ASSERT_TRUE(absl::StartsWith(a.path(), dir + "/")) << a.path();
  ASSERT_TRUE(absl::StartsWith(b.path(), dir + "/")) << b.path();
  EXPECT_THAT(a.path().substr(dir.size() + 1), MatchesRegex(name));
  EXPECT_THAT(b.path().substr(dir.size() + 1), MatchesRegex(name + "\\.v2"));
}

TEST(EventFileWriter, NeverReusesAnExistingFile) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(EventFileWriter a, EventFileWriter::Create(dir));
  ASSERT_OK_AND_ASSIGN(EventFileWriter b, EventFileWriter::Create(dir));
  ASSERT_OK_AND_ASSIGN(EventFileWriter c, EventFileWriter::Create(dir));
  // Within one second the later writers number their files; across seconds the time differs.
  EXPECT_NE(a.path(), b.path());
  EXPECT_NE(b.path(), c.path());
  EXPECT_NE(a.path(), c.path());
  EXPECT_THAT(ListDirNames(dir), SizeIs(3));
}

TEST(EventFileWriter, StampsNowWhenNoWallTimeIsGiven) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(EventFileWriter writer, EventFileWriter::Create(dir));
  const double before = WallTimeNow();
  ASSERT_OK(writer.AddScalar("x", 1.0f, 1));
  const double after = WallTimeNow();
  ASSERT_OK(writer.Close());
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(writer.path()));
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_GE(events[1].wall_time(), before);
  EXPECT_LE(events[1].wall_time(), after);
}

TEST(EventFileWriter, FlushMakesRecordsReadableBeforeClose) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(EventFileWriter writer, EventFileWriter::Create(dir));
  ASSERT_OK(writer.AddScalar("x", 1.0f, 1, 5.0));
  ASSERT_OK(writer.Flush());
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(writer.path()));
  EXPECT_THAT(events, SizeIs(2));
}

TEST(EventFileWriter, WritesOnItsOwnPastOneMebibyte) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(EventFileWriter writer, EventFileWriter::Create(dir));
  const std::size_t start = Slurp(writer.path()).size();
  int added = 0;
  while (Slurp(writer.path()).size() == start && added < 100000) {
    for (int i = 0; i < 1000; ++i, ++added) ASSERT_OK(writer.AddScalar("Train/Samples/train_loss", 1.0f, added, 1.0));
  }
  // Each record is a few dozen bytes: the buffer reached the file after about a mebibyte of them.
  EXPECT_GE(Slurp(writer.path()).size(), start + (1 << 20));
  EXPECT_LT(added, 100000);
  ASSERT_OK(writer.Close());
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(writer.path()));
  EXPECT_THAT(events, SizeIs(added + 1));
}

TEST(EventFileWriter, RefusesWritesAfterClose) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(EventFileWriter writer, EventFileWriter::Create(dir));
  ASSERT_OK(writer.Close());
  EXPECT_THAT(writer.AddScalar("x", 1.0f, 1), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("closed")));
  EXPECT_THAT(writer.Close(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(writer.path())));
}

TEST(EventFileWriter, CreateNamesALogdirThatIsAFile) {
  const std::string file = FreshTestDir() + "/not_a_dir";
  WriteBytes(file, "x");
  EXPECT_THAT(EventFileWriter::Create(file),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(file + "/events.out.tfevents.")));
  EXPECT_THAT(EventFileWriter::Create(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

// RLIMIT_FSIZE makes the next write fail with EFBIG (SIGXFSZ ignored): a full disk, in-process.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old_);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_;
};

TEST(EventFileWriter, AWriteFailureIsStickyAndNamesThePath) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(EventFileWriter writer, EventFileWriter::Create(dir));
  const std::size_t size = Slurp(writer.path()).size();
  absl::Status failed;
  {
    FileSizeLimit limit(size);
    ASSERT_OK(writer.AddScalar("x", 1.0f, 1, 5.0));  // buffered
    failed = writer.Flush();
  }
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kOutOfRange, HasSubstr(writer.path())));
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("write failed")));
  // The limit is gone, but the writer does not write again after a failed write.
  EXPECT_EQ(writer.AddScalar("y", 2.0f, 2, 6.0), failed);
  EXPECT_EQ(writer.Flush(), failed);
  EXPECT_EQ(writer.Close(), failed);
  EXPECT_EQ(Slurp(writer.path()).size(), size);
}

TEST(ReadEventFile, ReportsATruncatedRecordWithItsOffset) {
  const std::string path = WriteThreeScalars(FreshTestDir());
  const std::string bytes = Slurp(path);
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(path));
  // Where the last record starts: the file less the last record's size.
  std::string last_data;
  ASSERT_TRUE(events.back().SerializeToString(&last_data));
  const std::size_t last = bytes.size() - (12 + last_data.size() + 4);

  WriteBytes(path, bytes.substr(0, last + 5));  // inside the length header
  EXPECT_THAT(ReadEventFile(path), StatusIs(absl::StatusCode::kDataLoss,
                                            HasSubstr(absl::StrCat(path,
                                                                   ": truncated record header (5 of 12 bytes) at "
                                                                   "byte offset ",
                                                                   last))));
  WriteBytes(path, bytes.substr(0, bytes.size() - 2));  // inside the data CRC
  EXPECT_THAT(
      ReadEventFile(path),
      StatusIs(absl::StatusCode::kDataLoss,
               HasSubstr(absl::StrCat("truncated record (", last_data.size(), " data bytes and a 4-byte CRC declared, ",
                                      last_data.size() + 2, " bytes left) at byte offset ", last))));
  WriteBytes(path, bytes.substr(0, last));  // on a record boundary: a shorter, valid file
  EXPECT_THAT(ReadEventFile(path), IsOk());
}

TEST(ReadEventFile, ReportsAFlippedByteWithItsRecordsOffset) {
  const std::string path = WriteThreeScalars(FreshTestDir());
  const std::string bytes = Slurp(path);
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(path));
  std::string first_data;
  ASSERT_TRUE(events[0].SerializeToString(&first_data));
  const std::size_t second = 12 + first_data.size() + 4;

  std::string data_flip = bytes;
  data_flip[second + 12 + 3] ^= 0x01;  // a byte of the second record's data
  WriteBytes(path, data_flip);
  EXPECT_THAT(ReadEventFile(path),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr(absl::StrCat(path, ": record data fails its CRC-32C at byte offset ", second))));

  std::string length_flip = bytes;
  length_flip[second] ^= 0x40;  // the second record's length
  WriteBytes(path, length_flip);
  EXPECT_THAT(ReadEventFile(path),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr(absl::StrCat(path, ": record length fails its CRC-32C at byte offset ", second))));

  std::string crc_flip = bytes;
  crc_flip[bytes.size() - 1] ^= 0x80;  // the last record's data CRC
  WriteBytes(path, crc_flip);
  EXPECT_THAT(ReadEventFile(path), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("fails its CRC-32C")));
}

TEST(ReadEventFile, RejectsFramedBytesThatAreNotAnEvent) {
  const std::string path = FreshTestDir() + "/events.out.tfevents.bad";
  WriteBytes(path, EncodeRecord("\xff\xff\xff"));
  EXPECT_THAT(ReadEventFile(path),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(absl::StrCat(path,
                                                                           ": record is not a serialized Event at byte "
                                                                           "offset 0"))));
}

TEST(ReadEventFile, NamesAMissingFile) {
  const std::string path = FreshTestDir() + "/missing";
  EXPECT_THAT(ReadEventFile(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(ReadEventFile, ReadsAnEmptyFileAsNoEvents) {
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ParseEventRecords("", "empty"));
  EXPECT_THAT(events, ElementsAre());
}

}  // namespace
}  // namespace zt::monitor
