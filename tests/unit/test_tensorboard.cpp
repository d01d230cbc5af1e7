// The TensorBoard event-file writer (src/train/tensorboard.h) below what the end-to-end test
// (tests/metrics/test_tensorboard_events.sh, TensorBoard's own reader) can pin down: CRC-32C
// against published vectors, the TFRecord framing byte by byte, and the protobuf wire bytes of
// each Event kind. The other metrics helpers (tags, durations, VmHWM) are checked here too.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "src/train/metrics_log.h"
#include "src/train/tensorboard.h"

using namespace ringtrain;

namespace {

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
uint64_t le64(const std::string& s, size_t at) {
  uint64_t v;
  std::memcpy(&v, s.data() + at, 8);
  return v;
}
std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}
std::string le_double(double d) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &d, 8);
  return s;
}
std::string le_float(float f) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &f, 4);
  return s;
}

}  // namespace

// Catches: the wrong polynomial (plain CRC-32's 0xEDB88320 gives 0xCBF43926 for "123456789"),
// a missing final inversion, or a table built unreflected. Vectors: the CRC-32C check value
// and RFC 3720 (iSCSI) appendix B.4.
TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[static_cast<size_t>(i)] = static_cast<char>(i);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(crc32c("", 0), 0u);
}

// Catches: a continuation that re-inverts wrongly (records are checksummed in one piece, but
// the API promises continuation).
TEST(Crc32c, Continues) {
  const std::string a = "ring", b = "train";
  EXPECT_EQ(crc32c(b.data(), b.size(), crc32c(a.data(), a.size())), crc32c("ringtrain", 9));
}

// Catches: the mask's rotation direction or offset wrong (TensorBoard's reader then rejects
// every record). Values from TensorBoard's own masked_crc32c.
TEST(Crc32c, Masked) {
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
  EXPECT_EQ(masked_crc32c("", 0), 0xA282EAD8u);
}

// Catches: a big-endian or 32-bit length, the header CRC taken over the wrong bytes, the data
// CRC unmasked.
TEST(TfRecord, Framing) {
  const std::string data = "hello, events";
  const std::string r = tfrecord_frame(data);
  ASSERT_EQ(r.size(), 8 + 4 + data.size() + 4);
  EXPECT_EQ(le64(r, 0), data.size());
  EXPECT_EQ(le32(r, 8), masked_crc32c(r.data(), 8));
  EXPECT_EQ(r.substr(12, data.size()), data);
  EXPECT_EQ(le32(r, 12 + data.size()), masked_crc32c(data.data(), data.size()));
  const std::string empty = tfrecord_frame("");
  ASSERT_EQ(empty.size(), 16u);
  EXPECT_EQ(le64(empty, 0), 0u);
  EXPECT_EQ(le32(empty, 12), 0xA282EAD8u);
}

// Catches: wrong field numbers or wire types in Event (wall_time 1 fixed64, step 2 varint,
// file_version 3 bytes).
TEST(EventProto, FileVersion) {
  const std::string want = bytes({0x09}) + le_double(12.5) + bytes({0x10, 0x00, 0x1a, 13}) + "brain.Event:2";
  EXPECT_EQ(event_file_version(12.5), want);
}

// Catches: Summary.Value's simple_value not a fixed32 float in field 2, a wrong nesting length,
// a step that does not varint-encode past 127.
TEST(EventProto, Scalars) {
  // Value {tag "a", simple_value 1.5}: 0a 01 'a' 15 <f32> = 8 bytes; Summary {value}: 0a 08 ...
  const std::string value = bytes({0x0a, 0x01, 'a', 0x15}) + le_float(1.5f);
  const std::string summary = bytes({0x0a, 0x08}) + value;
  const std::string want = bytes({0x09}) + le_double(1.0) + bytes({0x10, 0xac, 0x02}) + bytes({0x2a, 0x0a}) + summary;
  EXPECT_EQ(event_scalars(1.0, 300, {{"a", 1.5f}}), want);
  // Two values are two repeated field-1 entries.
  const std::string two = event_scalars(0.0, 1, {{"a", 1.0f}, {"b", 2.0f}});
  EXPECT_NE(two.find(bytes({0x0a, 0x01, 'b', 0x15}) + le_float(2.0f)), std::string::npos);
}

// Catches: the text summary not tagged with the text plugin (SummaryMetadata 9 -> PluginData 1
// -> plugin_name 1), or a tensor that is not a scalar DT_STRING (dtype 1 = 7, empty shape 2,
// string_val 8).
TEST(EventProto, Text) {
  const std::string tensor = bytes({0x08, 0x07, 0x12, 0x00, 0x42, 0x02}) + "hi";
  const std::string meta = bytes({0x0a, 0x06, 0x0a, 0x04}) + "text";
  const std::string value = bytes({0x0a, 0x01, 'c', 0x42, static_cast<int>(tensor.size())}) + tensor +
                            bytes({0x4a, static_cast<int>(meta.size())}) + meta;
  const std::string summary = bytes({0x0a, static_cast<int>(value.size())}) + value;
  const std::string want = bytes({0x09}) + le_double(0.0) + bytes({0x10, 0x00, 0x2a, static_cast<int>(summary.size())}) +
                           summary;
  EXPECT_EQ(event_text(0.0, 0, "c", "hi"), want);
}

// Catches: SessionLog in the wrong Event field (7) or the wrong status (START = 1).
TEST(EventProto, SessionStart) {
  EXPECT_EQ(event_session_start(0.0, 7), bytes({0x09}) + le_double(0.0) + bytes({0x10, 0x07, 0x3a, 0x02, 0x08, 0x01}));
}

// Catches: a file that does not begin with the file_version record (readers need it first),
// or records not flushed when add_* returns (a killed run would lose them).
TEST(TensorBoardWriter, WritesFlushedRecords) {
  const auto dir = std::filesystem::temp_directory_path() / ("rt_tb_test_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::string path;
  {
    TensorBoardWriter w(dir.string());
    path = w.path();
    EXPECT_NE(path.find("/events.out.tfevents."), std::string::npos) << path;
    w.add_scalars(3, {{"train/loss", 2.5f}});
    std::ifstream in(path, std::ios::binary);  // read while the writer is still open
    const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string first = tfrecord_frame(event_file_version(0.0));
    ASSERT_GE(all.size(), first.size());
    const uint64_t len0 = le64(all, 0);
    const std::string ev0 = all.substr(12, len0);
    EXPECT_NE(ev0.find("brain.Event:2"), std::string::npos);
    const size_t at = 16 + len0;
    ASSERT_GT(all.size(), at + 12);
    const uint64_t len1 = le64(all, at);
    ASSERT_EQ(all.size(), at + 16 + len1) << "the scalar record is not complete on disk";
    const std::string ev1 = all.substr(at + 12, len1);
    EXPECT_EQ(le32(all, at + 12 + len1), masked_crc32c(ev1.data(), ev1.size()));
    EXPECT_NE(ev1.find("train/loss"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

// Catches: a metrics.jsonl key without a TensorBoard group (docs/METRICS.md has the table).
TEST(MetricsLog, Tags) {
  EXPECT_EQ(tensorboard_tag("loss"), "train/loss");
  EXPECT_EQ(tensorboard_tag("eval_loss"), "eval/loss");
  EXPECT_EQ(tensorboard_tag("accuracy"), "eval/accuracy");
  EXPECT_EQ(tensorboard_tag("tokens_per_s"), "perf/tokens_per_s");
  EXPECT_EQ(tensorboard_tag("mfu"), "perf/mfu");
  EXPECT_EQ(tensorboard_tag("rss_peak_mib"), "memory/rss_peak_mib");
}

// Catches: ETA formatting that overflows or prints minutes as seconds.
TEST(MetricsLog, Durations) {
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(245), "4m05s");
  EXPECT_EQ(format_duration(7620), "2h07m");
  EXPECT_EQ(format_duration(-1), "?");
}

// Catches: VmHWM parsed in the wrong unit (kB) or not found.
TEST(MetricsLog, RssPeak) {
  const size_t rss = process_rss_peak();
  EXPECT_GT(rss, size_t{1} << 20);   // a process linking MPI and BLAS holds > 1 MiB
  EXPECT_LT(rss, size_t{64} << 30);  // and < 64 GiB
}
