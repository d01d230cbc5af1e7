// The emulated device's stream trace as the overlap tests read it (tests/gpu/test_ring_overlap.cpp,
// tests/gpu/test_zero_overlap.cpp): entries in issue order, each on its stream.
#pragma once

#include <string>
#include <vector>

#include "src/device/gpu.h"

namespace ringtrain::test {

struct Trace {
  std::vector<gpu::TraceEntry> entries;
  std::string dump() const {
    std::string s;
    for (size_t i = 0; i < entries.size(); ++i)
      s += std::to_string(i) + " [" + std::to_string(entries[i].stream_id) + "] " + entries[i].what + "\n";
    return s;
  }
  // Indices of the entries on `stream` whose text contains `what`, in issue order.
  std::vector<int> find(int stream, const std::string& what) const {
    std::vector<int> out;
    for (size_t i = 0; i < entries.size(); ++i)
      if (entries[i].stream_id == stream && entries[i].what.find(what) != std::string::npos)
        out.push_back(static_cast<int>(i));
    return out;
  }
  // The compute stream's wait on the first event the comm stream records after entry `after`.
  int wait_for_comm_after(int comm, int compute, int after) const {
    for (size_t i = static_cast<size_t>(after) + 1; i < entries.size(); ++i)
      if (entries[i].stream_id == comm && entries[i].what.rfind("event_record ", 0) == 0) {
        const std::string ev = entries[i].what.substr(13);
        for (size_t j = i + 1; j < entries.size(); ++j)
          if (entries[j].stream_id == compute && entries[j].what == "wait_event " + ev) return static_cast<int>(j);
        return -1;
      }
    return -1;
  }
};

}  // namespace ringtrain::test
