#include "core/util/logging.h"

#include <sys/time.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace zt {
namespace {

std::atomic<int> g_rank{-1};
// Several ranks as threads of one process (tests, benchmarks) each tag their own lines; other
// threads (communication workers, autograd) use the process-wide rank.
thread_local int t_rank = -2;  // -2: not set on this thread

LogSeverity SeverityFromEnv() {
  const char* env = std::getenv("ZT_LOG_LEVEL");
  LogSeverity s = LogSeverity::kInfo;
  if (env != nullptr && *env != '\0' && !ParseLogSeverity(env, &s)) {
    std::fprintf(stderr, "zerotrain: ignoring ZT_LOG_LEVEL=%s (expected debug, info, warning or error)\n", env);
  }
  return s;
}

std::atomic<int>& MinSeverityStorage() {
  static std::atomic<int> min{static_cast<int>(SeverityFromEnv())};
  return min;
}

std::mutex& SinkMutex() {
  static std::mutex m;
  return m;
}
LogSink* g_sink = nullptr;  // guarded by SinkMutex()

const char* Basename(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

char SeverityLetter(LogSeverity s) {
  switch (s) {
    case LogSeverity::kDebug:
      return 'D';
    case LogSeverity::kInfo:
      return 'I';
    case LogSeverity::kWarning:
      return 'W';
    case LogSeverity::kError:
      return 'E';
  }
  return '?';
}

}  // namespace

void SetLogRank(int rank) {
  g_rank.store(rank);
  t_rank = rank;
}
void SetMinLogSeverity(LogSeverity severity) { MinSeverityStorage().store(static_cast<int>(severity)); }
LogSeverity MinLogSeverity() { return static_cast<LogSeverity>(MinSeverityStorage().load(std::memory_order_relaxed)); }

bool ParseLogSeverity(const std::string& text, LogSeverity* out) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "debug") {
    *out = LogSeverity::kDebug;
  } else if (t == "info") {
    *out = LogSeverity::kInfo;
  } else if (t == "warning" || t == "warn") {
    *out = LogSeverity::kWarning;
  } else if (t == "error") {
    *out = LogSeverity::kError;
  } else {
    return false;
  }
  return true;
}

LogSink* SetLogSink(LogSink* sink) {
  std::lock_guard<std::mutex> lock(SinkMutex());
  LogSink* old = g_sink;
  g_sink = sink;
  return old;
}

namespace log_internal {

LogMessage::LogMessage(LogSeverity severity, const char* file, int line) : severity_(severity) {
  timeval tv;
  gettimeofday(&tv, nullptr);
  std::tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char head[64];
  std::snprintf(head, sizeof(head), "%c%02d%02d %02d:%02d:%02d.%06ld ", SeverityLetter(severity), tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(tv.tv_usec));
  stream_ << head;
  const int rank = t_rank != -2 ? t_rank : g_rank.load(std::memory_order_relaxed);
  if (rank >= 0) stream_ << "rank" << rank << ' ';
  stream_ << Basename(file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  std::string text = stream_.str();
  text.push_back('\n');
  std::lock_guard<std::mutex> lock(SinkMutex());
  if (g_sink != nullptr) {
    g_sink->Write(severity_, text);
  } else {
    // One fwrite per line so lines of concurrent threads and ranks do not interleave.
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
}

}  // namespace log_internal
}  // namespace zt
