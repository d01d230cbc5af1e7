// Streams and events of the emulated device. By default work runs at issue, in issue order;
// in the deferred mode (set_stream_mode, RINGTRAIN_EMU_STREAMS=deferred) each created stream
// keeps its work until something waits for it, so a missing event wait between streams shows.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "src/device/emu/emu_internal.h"
#include "src/device/gpu.h"

namespace ringtrain::gpu {

struct StreamImpl {
  int id;
  std::deque<std::function<void()>> pending;  // deferred mode: issued, not yet run
};
struct EventImpl {
  bool recorded = false;
  int id = 0;
  double time_ms = 0.0;
  StreamImpl* stream = nullptr;  // where the latest record was issued
  uint64_t issued = 0;           // records issued
  uint64_t done = 0;             // records that have run
};

namespace emu {
namespace {

std::mutex g_ids_mu;
int g_next_stream_id = 1;
int g_next_event_id = 1;

// Stream execution: eager (at issue, in issue order) or deferred (each non-default stream
// keeps its work until something waits for it; see set_stream_mode).
StreamMode g_stream_mode = StreamMode::kEager;
bool g_stream_mode_from_env = false;
std::vector<StreamImpl*> g_streams;  // live streams, creation order

StreamMode stream_mode_now() {
  if (!g_stream_mode_from_env) {
    g_stream_mode_from_env = true;
    const char* e = std::getenv("RINGTRAIN_EMU_STREAMS");
    if (e && std::string(e) == "deferred") g_stream_mode = StreamMode::kDeferred;
  }
  return g_stream_mode;
}

// Runs the oldest pending operation of a stream (false when none).
bool run_one(StreamImpl* s) {
  if (!s || s->pending.empty()) return false;
  std::function<void()> op = std::move(s->pending.front());
  s->pending.pop_front();
  op();
  return true;
}
void drain(StreamImpl* s) {
  while (run_one(s)) {
  }
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// Device-wide: every stream in the order of the current schedule (creation order, reversed,
// or shuffled), so work on independent streams runs in different orders under different
// schedules.
void drain_all() {
  bool any = true;
  while (any) {
    any = false;
    std::vector<StreamImpl*> order = g_streams;
    const Schedule sched = current_schedule();
    if (sched == Schedule::kDescending) std::reverse(order.begin(), order.end());
    if (sched == Schedule::kShuffle) {
      std::mt19937_64 rng(current_schedule_seed());
      std::shuffle(order.begin(), order.end(), rng);
    }
    for (StreamImpl* s : order)
      if (!s->pending.empty()) {
        drain(s);
        any = true;
      }
  }
}

void enqueue(Stream stream, std::function<void()> op) {
  if (!stream || stream_mode_now() == StreamMode::kEager)
    op();
  else
    stream->pending.push_back(std::move(op));
}
}  // namespace emu

using emu::fail;

Status device_synchronize() {
  emu::drain_all();
  return Status::kSuccess;
}

Status stream_create(Stream* stream) {
  std::lock_guard<std::mutex> lock(emu::g_ids_mu);
  *stream = new StreamImpl{emu::g_next_stream_id++, {}};
  emu::g_streams.push_back(*stream);
  return Status::kSuccess;
}
Status stream_destroy(Stream stream) {
  if (!stream) return Status::kSuccess;
  emu::drain(stream);  // CUDA lets issued work finish
  emu::g_streams.erase(std::remove(emu::g_streams.begin(), emu::g_streams.end(), stream), emu::g_streams.end());
  delete stream;
  return Status::kSuccess;
}
Status stream_synchronize(Stream stream) {
  emu::drain(stream);
  return Status::kSuccess;
}
namespace {
// Runs the recording stream until record number `gen` of the event has run.
void wait_record(Event event, uint64_t gen) {
  while (event->done < gen)
    if (!emu::run_one(event->stream)) break;
}
}  // namespace
Status stream_wait_event(Stream stream, Event event) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  trace_note(stream, "wait_event #" + std::to_string(event->id));
  const uint64_t gen = event->issued;  // the latest record at the time of the call
  emu::enqueue(stream, [event, gen] { wait_record(event, gen); });
  return Status::kSuccess;
}
Status event_create(Event* event) {
  std::lock_guard<std::mutex> lock(emu::g_ids_mu);
  *event = new EventImpl{};
  (*event)->id = emu::g_next_event_id++;
  return Status::kSuccess;
}
Status event_destroy(Event event) {
  delete event;
  return Status::kSuccess;
}
Status event_record(Event event, Stream stream) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  event->recorded = true;
  event->stream = stream;
  const uint64_t gen = ++event->issued;
  trace_note(stream, "event_record #" + std::to_string(event->id));
  emu::enqueue(stream, [event, gen] {
    event->done = gen;
    event->time_ms = emu::now_ms();
  });
  return Status::kSuccess;
}
Status event_query(Event event) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  if (event->done >= event->issued) return Status::kSuccess;
  emu::run_one(event->stream);  // the device makes progress while the host polls
  return event->done >= event->issued ? Status::kSuccess : Status::kNotReady;
}
Status event_synchronize(Event event) {
  if (!event) return fail(Status::kInvalidResourceHandle, "null event");
  wait_record(event, event->issued);
  return Status::kSuccess;
}
Status event_elapsed_ms(float* ms, Event start, Event end) {
  if (!start || !end) return fail(Status::kInvalidResourceHandle, "null event");
  if (!start->recorded || !end->recorded) return fail(Status::kInvalidResourceHandle, "event not recorded");
  *ms = static_cast<float>(end->time_ms - start->time_ms);
  return Status::kSuccess;
}


void set_stream_mode(StreamMode mode) {
  emu::drain_all();
  emu::g_stream_mode_from_env = true;
  emu::g_stream_mode = mode;
}
StreamMode current_stream_mode() { return emu::stream_mode_now(); }
int stream_id(Stream stream) { return stream ? stream->id : 0; }

}  // namespace ringtrain::gpu
