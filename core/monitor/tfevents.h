// TensorBoard event files ("events.out.tfevents.*"), written natively: no TensorFlow, no Python.
// DeepSpeed's tensorboard monitor (torch's SummaryWriter) writes these; TensorBoard charts them.
//
//   ASSIGN_OR_RETURN(zt::monitor::EventFileWriter writer,
//                    zt::monitor::EventFileWriter::Create("runs/my_job"));
//   RETURN_IF_ERROR(writer.AddScalar("Train/Samples/train_loss", loss, global_samples));
//   RETURN_IF_ERROR(writer.Flush());              // each step's events reach the OS
//   ...
//   RETURN_IF_ERROR(writer.Close());
//
//   ASSIGN_OR_RETURN(std::vector<zt::monitor::tb::Event> events,
//                    zt::monitor::ReadEventFile(writer.path()));    // tests, tools
//
// A file is a sequence of TFRecords, each holding one serialized Event (event.proto):
//
//   uint64  length of the data, little-endian
//   uint32  masked CRC-32C of those 8 length bytes, little-endian
//   bytes   data (length bytes)
//   uint32  masked CRC-32C of the data, little-endian
//
// where masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32): TFRecord masks the CRC
// so that a CRC of bytes that hold CRCs is not degenerate.  The first record is an Event whose
// file_version is "brain.Event:2"; scalars follow as Events holding a one-value Summary.
#ifndef ZEROTRAIN_CORE_MONITOR_TFEVENTS_H_
#define ZEROTRAIN_CORE_MONITOR_TFEVENTS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/monitor/event.pb.h"

namespace zt::monitor {

// The file_version of every file's first record.
inline constexpr char kEventFileVersion[] = "brain.Event:2";

// TFRecord's masked CRC-32C of `data`.
uint32_t MaskedCrc32c(absl::string_view data);
// One whole record (length, its masked CRC, data, the data's masked CRC) framing `data`.
std::string EncodeRecord(absl::string_view data);

// Seconds since the Unix epoch, with microseconds: an Event's wall_time for "now".
double WallTimeNow();

// Appends Events to one new event file.  Records are buffered in memory and reach the file (the
// OS, not necessarily the disk) on Flush() and Close(), and whenever the buffer passes 1 MiB.
// The first failure is sticky: every later call returns it, and nothing more is written after a
// record that may have reached the file in part.  Move-only; not thread-safe (one thread, or
// the caller's lock).  The destructor closes an open file, flushing what it can and logging (not
// returning) a failure: call Close() to see it.
class EventFileWriter {
 public:
  // Makes `logdir` (mkdir -p) and, in it, the new file
  // "events.out.tfevents.<unix seconds, 10 digits>.<hostname><filename_suffix>" — TensorFlow's
  // naming; TensorBoard reads any file whose name holds "tfevents".  If a file of that name
  // exists (two writers in one second), ".1", ".2", ... go before the suffix: an event file is
  // never appended to or overwritten.  Writes the file_version record and flushes it.
  static absl::StatusOr<EventFileWriter> Create(const std::string& logdir, absl::string_view filename_suffix = "");

  EventFileWriter(EventFileWriter&& other) noexcept;
  EventFileWriter& operator=(EventFileWriter&& other) noexcept;
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;
  ~EventFileWriter();

  // The file's path: logdir/events.out.tfevents.*.
  const std::string& path() const { return path_; }

  // One Event at `step` holding Summary value {tag, simple_value}.  TensorBoard's scalars are
  // float32 (SummaryWriter.add_scalar rounds a Python float the same way).
  absl::Status AddScalar(absl::string_view tag, float value, int64_t step);
  absl::Status AddScalar(absl::string_view tag, float value, int64_t step, double wall_time);
  // Any Event, as it is.
  absl::Status AddEvent(const tb::Event& event);

  // Writes the buffered records to the file.
  absl::Status Flush();
  // Flush() and close the file; the file is closed even after a failure, which is returned.  Later
  // calls fail with kFailedPrecondition (or the sticky error).
  absl::Status Close();

 private:
  EventFileWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  absl::Status CheckWritable() const;
  // Close() if open, logging a failure: the destructor's and move assignment's close.
  void CloseAndLog();

  std::string path_;
  int fd_ = -1;
  std::string buffer_;
  absl::Status status_;  // the first failure, sticky
};

// Every Event in an event file, in order, each record's two CRCs checked.  A record cut short or
// failing a CRC, or data that is not an Event, is kDataLoss "<path>: ... at byte offset N", N
// being where that record starts.  (TensorBoard's own loader stops quietly at a truncated last
// record, as a writer may still be appending it; this reader is for finished files.)
absl::StatusOr<std::vector<tb::Event>> ReadEventFile(const std::string& path);
// The same for a file's bytes already in memory; `name` goes in error messages.
absl::StatusOr<std::vector<tb::Event>> ParseEventRecords(absl::string_view bytes, absl::string_view name);

}  // namespace zt::monitor

#endif  // ZEROTRAIN_CORE_MONITOR_TFEVENTS_H_
