// One monitored number: DeepSpeed's event tuple (log_name, value, step), which its engine hands to
// every enabled monitor in a list per step.
//
//   std::vector<zt::monitor::ScalarEvent> events = {
//       {"Train/Samples/train_loss", loss, global_samples},
//       {"Train/Samples/lr", lr, global_samples}};
//   RETURN_IF_ERROR(monitor.WriteEvents(events));
#ifndef ZEROTRAIN_CORE_MONITOR_SCALAR_EVENT_H_
#define ZEROTRAIN_CORE_MONITOR_SCALAR_EVENT_H_

#include <cstdint>
#include <string>

namespace zt::monitor {

struct ScalarEvent {
  // The metric's name; '/' groups charts in TensorBoard ("Train/Samples/train_loss").
  std::string tag;
  double value = 0;
  // DeepSpeed's engine uses the global sample count here, not the optimizer step.
  int64_t step = 0;
};

}  // namespace zt::monitor

#endif  // ZEROTRAIN_CORE_MONITOR_SCALAR_EVENT_H_
