// TensorBoard event files, written without TensorFlow or a protobuf library: the format is a
// sequence of TFRecord records, each holding one serialized `Event` message.
//
//   record = uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
//            (little-endian; the mask is ((crc >> 15) | (crc << 17)) + 0xa282ead8)
//   Event  { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//            SessionLog session_log = 7; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; TensorProto tensor = 8;
//             SummaryMetadata metadata = 9; }
//   SummaryMetadata { PluginData plugin_data = 1; }   PluginData { string plugin_name = 1; }
//   TensorProto { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2;
//                 repeated bytes string_val = 8; }
//   SessionLog { SessionStatus status = 1 (START = 1); }
// Field numbers are those of tensorboard/compat/proto/{event,summary,tensor}.proto. The first
// record of a file is an Event with file_version "brain.Event:2", which readers require.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace ringtrain {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), continuing from `crc` (0 to start).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// The rotated-and-offset CRC that TFRecord stores (a CRC of data that holds CRCs stays useful).
uint32_t masked_crc32c(const void* data, size_t n);
// One TFRecord: length, its masked CRC, the bytes, their masked CRC.
std::string tfrecord_frame(const std::string& data);

// Serialized Event messages.
std::string event_file_version(double wall_time);
std::string event_scalars(double wall_time, int64_t step,
                          const std::vector<std::pair<std::string, float>>& scalars);
// A text-plugin summary: a scalar DT_STRING tensor that TensorBoard renders as Markdown.
std::string event_text(double wall_time, int64_t step, const std::string& tag, const std::string& markdown);
// SessionLog START at `step`: a resumed run tells readers to drop the events read so far at
// steps >= `step` (what the earlier run logged after the checkpoint this one resumed from).
std::string event_session_start(double wall_time, int64_t step);

// Seconds since the epoch, as Event.wall_time wants it.
double wall_time_now();

// Writes events to a new <dir>/events.out.tfevents.<unix seconds>.<host> (the seconds made
// larger than any event file already in `dir`, so that files sort in run order); every add_* call
// ends with a flush to the kernel, so a killed process loses at most the record it was
// writing (a reader stops at a truncated last record, keeping every one before it).
// A write error (disk full) is reported once as a warning and ends the file's writing; the
// run goes on.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
  void add_text(int64_t step, const std::string& tag, const std::string& markdown);
  void add_session_start(int64_t step);
  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace ringtrain
