#include "src/train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "src/core/error.h"
#include "src/core/process.h"

namespace ringtrain {
namespace {

static_assert(std::endian::native == std::endian::little,
              "event files are little-endian; this writer copies host integers as they are");

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

// --- protobuf wire format: a tag is (field << 3 | wire type); 0 varint, 1 fixed64,
//     2 length-delimited, 5 fixed32 ---
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, int field, int wire) { put_varint(out, static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
template <typename T>
void put_raw(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
void put_double(std::string& out, int field, double v) {
  put_tag(out, field, 1);
  put_raw(out, v);
}
void put_float(std::string& out, int field, float v) {
  put_tag(out, field, 5);
  put_raw(out, v);
}
void put_int(std::string& out, int field, int64_t v) {
  put_tag(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));  // int64: two's complement, 10 bytes if negative
}

// Event header fields shared by every event.
std::string event_head(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  put_int(e, 2, step);
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrcTable[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(const std::string& data) {
  std::string r;
  r.reserve(data.size() + 16);
  const uint64_t len = data.size();
  put_raw(r, len);
  put_raw(r, masked_crc32c(r.data(), 8));
  r += data;
  put_raw(r, masked_crc32c(data.data(), data.size()));
  return r;
}

std::string event_file_version(double wall_time) {
  std::string e = event_head(wall_time, 0);
  put_bytes(e, 3, "brain.Event:2");
  return e;
}

std::string event_scalars(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_float(v, 2, value);
    put_bytes(summary, 1, v);
  }
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::string event_text(double wall_time, int64_t step, const std::string& tag, const std::string& markdown) {
  std::string plugin_data, metadata, tensor, value, summary;
  put_bytes(plugin_data, 1, "text");  // PluginData.plugin_name
  put_bytes(metadata, 1, plugin_data);  // SummaryMetadata.plugin_data
  put_int(tensor, 1, 7);               // TensorProto.dtype = DT_STRING
  put_bytes(tensor, 2, "");            // tensor_shape: no dimensions, a scalar
  put_bytes(tensor, 8, markdown);      // string_val
  put_bytes(value, 1, tag);
  put_bytes(value, 8, tensor);
  put_bytes(value, 9, metadata);
  put_bytes(summary, 1, value);
  std::string e = event_head(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::string event_session_start(double wall_time, int64_t step) {
  std::string log;
  put_int(log, 1, 1);  // SessionLog.status = START
  std::string e = event_head(wall_time, step);
  put_bytes(e, 7, log);
  return e;
}

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  RT_INPUT_CHECK(!ec, "log.tensorboard: cannot create ", dir, ": ", ec.message());
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  // Readers load a directory's files in name order, so a later run's file must sort after an
  // earlier one's, even within the same second: the time field is at least the newest one + 1.
  long long t = static_cast<long long>(std::time(nullptr));
  const std::string prefix = "events.out.tfevents.";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long long seen = std::atoll(name.c_str() + prefix.size());
    if (seen >= t) t = seen + 1;
  }
  path_ = dir + "/" + prefix + std::to_string(t) + "." + host;
  file_ = std::fopen(path_.c_str(), "wb");
  RT_INPUT_CHECK(file_ != nullptr, "log.tensorboard: cannot write ", path_, ": ", std::strerror(errno));
  write_event(event_file_version(wall_time_now()));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write_event(const std::string& event) {
  if (!file_) return;
  const std::string rec = tfrecord_frame(event);
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size() || std::fflush(file_) != 0) {
    warn("log.tensorboard: writing " + path_ + " failed (" + std::strerror(errno) +
         "); no more TensorBoard events this run");
    std::fclose(file_);
    file_ = nullptr;
  }
}

void TensorBoardWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars) {
  write_event(event_scalars(wall_time_now(), step, scalars));
}

void TensorBoardWriter::add_text(int64_t step, const std::string& tag, const std::string& markdown) {
  write_event(event_text(wall_time_now(), step, tag, markdown));
}

void TensorBoardWriter::add_session_start(int64_t step) { write_event(event_session_start(wall_time_now(), step)); }

}  // namespace ringtrain
