// Logging for every zerotrain layer: one line per message on stderr, tagged with the rank.
//
//   ZT_LOG(INFO) << "step " << step << " loss " << loss;
//   ZT_LOG(WARNING) << "io_uring unavailable (" << why << "); using a pread/pwrite pool";
//   ZT_LOG_FIRST(WARNING) << "said once per process, however often this line runs";
//
// Lines look like `I1127 23:59:01.123456 rank1 engine.cc:42] step 10 loss 2.31` (glog's layout,
// so existing log tooling reads them).  ZT_LOG_LEVEL=debug|info|warning|error sets the lowest
// severity printed (default info).  Library code never exits on an error: it returns a Status;
// ZT_LOG(ERROR) only reports.
#ifndef ZEROTRAIN_CORE_UTIL_LOGGING_H_
#define ZEROTRAIN_CORE_UTIL_LOGGING_H_

#include <atomic>
#include <sstream>
#include <string>

namespace zt {

enum class LogSeverity : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Every line after this call carries `rank<rank>`; -1 (the default) leaves the tag out.  The
// calling thread keeps this rank even if another thread sets a different one later.
void SetLogRank(int rank);
// Lowest severity printed.  Defaults to ZT_LOG_LEVEL, else kInfo.
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();
// Parses "debug", "info", "warning"/"warn", "error" (any case).  False for anything else.
bool ParseLogSeverity(const std::string& text, LogSeverity* out);

// Where lines go.  The default sink writes to stderr; tests capture lines with their own.
class LogSink {
 public:
  virtual ~LogSink() = default;
  virtual void Write(LogSeverity severity, const std::string& line) = 0;
};
// Installs `sink` (not owned; nullptr restores stderr).  Returns the previous one.
LogSink* SetLogSink(LogSink* sink);

namespace log_internal {

// Collects one message and writes it as a single line when destroyed.
class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Lets a macro swallow the stream expression when the message is not printed.
struct Voidify {
  void operator&(std::ostream&) {}
};

inline bool Enabled(LogSeverity s) { return static_cast<int>(s) >= static_cast<int>(MinLogSeverity()); }

}  // namespace log_internal
}  // namespace zt

#define ZT_LOG_SEVERITY_DEBUG ::zt::LogSeverity::kDebug
#define ZT_LOG_SEVERITY_INFO ::zt::LogSeverity::kInfo
#define ZT_LOG_SEVERITY_WARNING ::zt::LogSeverity::kWarning
#define ZT_LOG_SEVERITY_ERROR ::zt::LogSeverity::kError

#define ZT_LOG(severity)                                   \
  !::zt::log_internal::Enabled(ZT_LOG_SEVERITY_##severity) \
      ? (void)0                                            \
      : ::zt::log_internal::Voidify() &                    \
            ::zt::log_internal::LogMessage(ZT_LOG_SEVERITY_##severity, __FILE__, __LINE__).stream()

// Like ZT_LOG, but only the first time this statement runs in the process.
#define ZT_LOG_FIRST(severity) \
  for (static std::atomic<bool> zt_log_once_done_{false}; !zt_log_once_done_.exchange(true);) ZT_LOG(severity)

#endif  // ZEROTRAIN_CORE_UTIL_LOGGING_H_
