// TensorBoard's own Python reader reads an event file this library wrote: its record reader
// (both CRCs checked), its proto classes and its EventAccumulator's scalars.  And the other way:
// ReadEventFile reads a file TensorBoard's own writer wrote.
//
// The Python is $ZT_TB_PYTHON (default python3; ./bazelw sets it to .venv's, where it installs
// TensorBoard).  Where it cannot import tensorboard the test skips and says so.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/monitor/tfevents.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::monitor {
namespace {

using zt::testing::CommandResult;
using zt::testing::FreshTestDir;
using zt::testing::RunCommand;

// Exit 77 with "SKIP: why" when tensorboard is missing; else one line per record from the loader
// and one per scalar from the accumulator.
constexpr char kReaderScript[] = R"py(
import sys
try:
    import tensorboard
    from tensorboard.backend.event_processing import event_accumulator, event_file_loader
except Exception as e:
    print("SKIP: %s cannot import tensorboard: %r" % (sys.executable, e))
    sys.exit(77)

path = sys.argv[1]
print("tensorboard", tensorboard.__version__)
for event in event_file_loader.LegacyEventFileLoader(path).Load():
    if event.HasField("file_version"):
        print("record file_version=%s step=%d" % (event.file_version, event.step))
    else:
        for v in event.summary.value:
            print("record tag=%s simple_value=%r step=%d wall_time=%r"
                  % (v.tag, v.simple_value, event.step, event.wall_time))
acc = event_accumulator.EventAccumulator(path)
acc.Reload()
print("file_version", acc.file_version)
for tag in sorted(acc.Tags()["scalars"]):
    for s in acc.Scalars(tag):
        print("scalar", tag, s.step, repr(s.value), repr(s.wall_time))

# TensorBoard checks our CRCs: with the last record's data CRC flipped it stops before that record.
data = bytearray(open(path, "rb").read())
data[-1] ^= 0x80
corrupt = sys.argv[2] + ".corrupt"
open(corrupt, "wb").write(bytes(data))
print("corrupt copy:", len(list(event_file_loader.RawEventFileLoader(corrupt).Load())), "records")

# The other way: TensorBoard's own writer, for ReadEventFile.
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
writer = EventFileWriter(sys.argv[2])
writer.add_event(event_pb2.Event(step=7, wall_time=1234.5, summary=summary_pb2.Summary(
    value=[summary_pb2.Summary.Value(tag="theirs/x", simple_value=0.75)])))
writer.close()
)py";

TEST(TensorBoardInterop, ItReadsOurFileAndWeReadItsFile) {
  const char* env = std::getenv("ZT_TB_PYTHON");
  const bool from_env = env != nullptr && *env != '\0';
  const std::string python = from_env ? env : "python3";
  const std::string dir = FreshTestDir();
  std::string path;
  {
    ASSERT_OK_AND_ASSIGN(EventFileWriter writer, EventFileWriter::Create(dir + "/job"));
    ASSERT_OK(writer.AddScalar("Train/Samples/train_loss", 2.5f, 64, 1700000000.25));
    ASSERT_OK(writer.AddScalar("Train/Samples/lr", 0.125f, 64, 1700000000.5));
    ASSERT_OK(writer.AddScalar("Train/Samples/train_loss", 2.25f, 128, 1700000001.75));
    ASSERT_OK(writer.Close());
    path = writer.path();
  }
  const std::string script = dir + "/read_events.py";
  std::ofstream(script) << kReaderScript;

  // stdout only: TensorBoard warns on stderr when TensorFlow is absent.
  const std::string theirs = dir + "/theirs";
  const CommandResult run = RunCommand(absl::StrCat("'", python, "' '", script, "' '", path, "' '", theirs, "'"));
  if (run.exit_code == 77) GTEST_SKIP() << run.out;
  if (run.exit_code == 127) {
    // A missing default python3 is a machine without Python; a ZT_TB_PYTHON that is not there is
    // a mistake to report.
    if (from_env) FAIL() << "ZT_TB_PYTHON=" << python << " cannot be run (the shell says 127)";
    GTEST_SKIP() << "cannot run python3 (set ZT_TB_PYTHON to a Python with tensorboard)";
  }
  std::cout << run.out;  // in test.log: what TensorBoard read
  ASSERT_EQ(run.exit_code, 0) << run.out;

  const std::string records =
      absl::StrCat("record file_version=brain.Event:2 step=0\n",
                   "record tag=Train/Samples/train_loss simple_value=2.5 step=64 wall_time=1700000000.25\n",
                   "record tag=Train/Samples/lr simple_value=0.125 step=64 wall_time=1700000000.5\n",
                   "record tag=Train/Samples/train_loss simple_value=2.25 step=128 wall_time=1700000001.75\n",
                   "file_version 2.0\n");  // EventAccumulator keeps the number after "brain.Event:"
  const std::string scalars = absl::StrCat(
      "scalar Train/Samples/lr 64 0.125 1700000000.5\n", "scalar Train/Samples/train_loss 64 2.5 1700000000.25\n",
      "scalar Train/Samples/train_loss 128 2.25 1700000001.75\n", "corrupt copy: 3 records\n");
  EXPECT_THAT(run.out, ::testing::HasSubstr(records + scalars));

  const std::vector<std::string> names = zt::testing::ListDirNames(theirs);
  ASSERT_THAT(names, ::testing::SizeIs(1));
  EXPECT_THAT(names[0], ::testing::StartsWith("events.out.tfevents."));
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(theirs + "/" + names[0]));
  ASSERT_THAT(events, ::testing::SizeIs(2));
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_EQ(events[1].step(), 7);
  EXPECT_EQ(events[1].wall_time(), 1234.5);
  ASSERT_THAT(events[1].summary().value(), ::testing::SizeIs(1));
  EXPECT_EQ(events[1].summary().value(0).tag(), "theirs/x");
  EXPECT_EQ(events[1].summary().value(0).simple_value(), 0.75f);
}

}  // namespace
}  // namespace zt::monitor
