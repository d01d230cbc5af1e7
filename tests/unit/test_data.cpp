// data/: token files, the byte tokenizer, prepare-text, the deterministic samplers and the
// synthetic tasks. Each test names the bug it would catch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/prepare_text.h"
#include "data/token_file.h"
#include "data/tokenizer.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

namespace fs = std::filesystem;

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rt_test_data_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static void write_bytes(const std::string& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary) << bytes;
  }
  static std::string read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
};

// Runs f, expects an input error whose message contains every one of `parts`.
void expect_input_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one containing \"" << parts.front() << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput) << e.what();
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message \"" << e.what() << "\" lacks \"" << part << "\"";
  }
}

std::vector<uint32_t> random_tokens(uint64_t seed, size_t n, uint32_t vocab) {
  SampleRng rng(seed);
  std::vector<uint32_t> t(n);
  for (uint32_t& x : t) x = static_cast<uint32_t>(rng.below(vocab));
  return t;
}

Config text_config(const std::string& train, const std::string& val = "") {
  Config c;
  c.data.task = Task::kText;
  c.data.train = train;
  c.data.val = val;
  c.train.seq_len = 64;
  c.model.vocab_size = 256;
  c.run.seed = 7;
  return c;
}

bool same(const Sample& a, const Sample& b) {
  return a.inputs == b.inputs && a.targets == b.targets && a.answer == b.answer &&
         a.doc == b.doc && a.pos == b.pos;
}

uint64_t round_up8(uint64_t bytes) { return (bytes + 7) / 8 * 8; }

// A version-1 file as earlier builds wrote it: 32-byte header, the tokens, nothing else.
std::string version1_bytes(const std::vector<uint32_t>& tokens, int width) {
  std::string b(kTokenFileV1HeaderBytes, '\0');
  b.replace(0, 8, "RTTOKENS");
  auto put = [&](size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) b[at + i] = char((v >> (8 * i)) & 0xff);
  };
  put(8, 1, 4);
  put(12, uint64_t(width), 4);
  put(16, tokens.size(), 8);
  put(24, tokens.empty() ? 0 : *std::max_element(tokens.begin(), tokens.end()) + 1, 4);
  for (uint32_t t : tokens)
    for (int i = 0; i < width; ++i) b += char((t >> (8 * i)) & 0xff);
  return b;
}

void put_u64(std::string* b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*b)[at + i] = char((v >> (8 * i)) & 0xff);
}

// ---- token files --------------------------------------------------------------------------

// Catches: wrong byte order or width handling, header fields lost, vocab_size not recorded,
// read() offset errors.
TEST_F(DataTest, TokenFileRoundTripsBothWidths) {
  for (int width : {2, 4}) {
    const uint64_t seed = 100 + width;
    SCOPED_TRACE("width " + std::to_string(width) + " seed " + std::to_string(seed));
    const uint32_t vocab = width == 2 ? 65536 : 200000;
    std::vector<uint32_t> tokens = random_tokens(seed, 10007, vocab - 1);
    tokens[1234] = vocab - 1;  // the largest id the width can carry (for width 2)
    const std::string p = path("t" + std::to_string(width) + ".bin");
    write_token_file(p, tokens, width);
    EXPECT_FALSE(fs::exists(p + ".partial"));
    EXPECT_EQ(fs::file_size(p), kTokenFileHeaderBytes + round_up8(tokens.size() * width));

    TokenFile f = TokenFile::open(p);
    EXPECT_EQ(f.size(), tokens.size());
    EXPECT_EQ(f.width(), width);
    EXPECT_EQ(f.vocab_size(), vocab);
    for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(f[i], tokens[i]) << "token " << i;
    std::vector<int32_t> out(500);
    f.read(777, 500, out.data());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(uint32_t(out[i]), tokens[777 + i]);

    // Move keeps the mapping valid.
    TokenFile g = std::move(f);
    EXPECT_EQ(g[1234], vocab - 1);
  }
}

// Catches: an empty corpus producing an unreadable file.
TEST_F(DataTest, TokenFileEmpty) {
  write_token_file(path("e.bin"), {}, 2);
  TokenFile f = TokenFile::open(path("e.bin"));
  EXPECT_EQ(f.size(), 0u);
  EXPECT_EQ(f.vocab_size(), 0u);
}

// Catches: ids silently wrapped to 16 bits.
TEST_F(DataTest, TokenFileRejectsIdsTooWideForWidth) {
  expect_input_error(
      [&] {
        write_token_file(path("w.bin"), {1, 70000}, 2);
      },
      {"70000", "width of 4"});
  expect_input_error([&] { write_token_file(path("w.bin"), {1}, 3); }, {"must be 2 or 4"});
}

// Catches: bad files read as garbage tokens, crashes on short files, or messages that do not
// say which file and what is wrong (the issue's "bad data" requirement).
TEST_F(DataTest, BadTokenFilesAreInputErrorsNamingTheProblem) {
  const std::string good = path("good.bin");
  write_token_file(good, std::vector<uint32_t>(1000, 65), 2);
  const std::string bytes = read_bytes(good);

  expect_input_error([&] { TokenFile::open(path("missing.bin"), "data.train"); },
                     {"data.train", "missing.bin", "cannot open", "No such file"});

  write_token_file(path("short.bin"), {}, 2);
  write_bytes(path("short.bin"), bytes.substr(0, 10));
  expect_input_error([&] { TokenFile::open(path("short.bin")); },
                     {"short.bin", "10 bytes", "32-byte header"});

  std::string magic = bytes;
  magic.replace(0, 8, "GPT2TOKS");
  write_bytes(path("magic.bin"), magic);
  expect_input_error([&] { TokenFile::open(path("magic.bin"), "data.val"); },
                     {"data.val", "magic.bin", "wrong magic", "GPT2TOKS"});

  std::string version = bytes;
  version[8] = 7;
  write_bytes(path("version.bin"), version);
  expect_input_error([&] { TokenFile::open(path("version.bin")); },
                     {"version.bin", "version 7", "reads versions 1 and 2"});

  std::string width = bytes;
  width[12] = 3;
  write_bytes(path("width.bin"), width);
  expect_input_error([&] { TokenFile::open(path("width.bin")); }, {"width.bin", "token width 3"});

  write_bytes(path("trunc.bin"), bytes.substr(0, kTokenFileHeaderBytes + 1500));
  expect_input_error([&] { TokenFile::open(path("trunc.bin"), "data.train"); },
                     {"data.train: " + path("trunc.bin") +
                      " is truncated: header says 1000 tokens (2000 bytes) but 1500 bytes follow"});

  write_bytes(path("long.bin"), bytes + "xyz");
  expect_input_error([&] { TokenFile::open(path("long.bin")); },
                     {"long.bin", "damaged", "(2064 bytes) but the file has 2067 bytes"});

  // A count so large that count * width overflows 64 bits must still read as truncated.
  std::string huge = bytes;
  for (int i = 16; i < 24; ++i) huge[i] = '\xff';
  write_bytes(path("huge.bin"), huge);
  expect_input_error([&] { TokenFile::open(path("huge.bin")); }, {"huge.bin", "truncated"});

  expect_input_error([&] { TokenFile::open(dir_.string()); }, {"not a regular file"});
}

// Catches: files written before the document index (version 1) no longer loading, or loading
// with a made-up index instead of as one document; a version-1 file's size rule lost.
TEST_F(DataTest, Version1FilesLoadAsOneDocument) {
  const std::vector<uint32_t> tokens = random_tokens(21, 1001, 300);
  write_bytes(path("v1.bin"), version1_bytes(tokens, 2));
  TokenFile f = TokenFile::open(path("v1.bin"), "data.train");
  ASSERT_EQ(f.size(), tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(f[i], tokens[i]) << "token " << i;
  EXPECT_FALSE(f.has_document_index());
  EXPECT_EQ(f.document_count(), 1u);
  EXPECT_EQ(f.document_start(0), 0u);

  write_bytes(path("v1long.bin"), version1_bytes(tokens, 2) + "xy");
  expect_input_error([&] { TokenFile::open(path("v1long.bin")); },
                     {"v1long.bin", "2002 bytes) but 2004 bytes follow", "2 extra bytes"});
}

// Catches: the index lost, shifted or misread (padding after an odd number of 2-byte tokens),
// tokens damaged by the index behind them, a file without documents claiming an index.
TEST_F(DataTest, DocumentIndexRoundTrips) {
  for (int width : {2, 4}) {
    SCOPED_TRACE("width " + std::to_string(width));
    const std::vector<uint32_t> tokens = random_tokens(22 + width, 1001, 1000);
    const std::vector<uint64_t> starts = {0, 1, 3, 10, 500, 1000};
    const std::string p = path("docs" + std::to_string(width) + ".bin");
    write_token_file(p, tokens, width, starts);
    EXPECT_EQ(fs::file_size(p),
              kTokenFileHeaderBytes + round_up8(tokens.size() * width) + 8 * starts.size());
    TokenFile f = TokenFile::open(p);
    ASSERT_EQ(f.size(), tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(f[i], tokens[i]) << "token " << i;
    EXPECT_TRUE(f.has_document_index());
    ASSERT_EQ(f.document_count(), starts.size());
    for (size_t d = 0; d < starts.size(); ++d) EXPECT_EQ(f.document_start(d), starts[d]);
    TokenFile g = std::move(f);  // the index moves with the mapping
    EXPECT_EQ(g.document_start(4), 500u);
  }
  write_token_file(path("plain.bin"), {5, 6, 7}, 2);
  TokenFile plain = TokenFile::open(path("plain.bin"));
  EXPECT_FALSE(plain.has_document_index());
  EXPECT_EQ(plain.document_count(), 1u);
  write_token_file(path("empty.bin"), {}, 2);
  EXPECT_EQ(TokenFile::open(path("empty.bin")).document_count(), 0u);
}

// Catches: an index that would make the sampler read outside the file or build empty or
// backwards documents accepted (or asserted on) instead of an input error that names the file
// and says what is wrong; a header document count that disagrees with the file's size.
TEST_F(DataTest, BadDocumentIndexesAreInputErrorsNamingTheFile) {
  const std::vector<uint32_t> tokens(100, 65);
  write_token_file(path("good.bin"), tokens, 2, {0, 10, 20, 30});
  const std::string good = read_bytes(path("good.bin"));
  const size_t index = kTokenFileHeaderBytes + round_up8(200);
  auto variant = [&](const std::string& name, const std::function<void(std::string*)>& edit) {
    std::string b = good;
    edit(&b);
    write_bytes(path(name), b);
    return path(name);
  };
  const std::string order = variant("order.bin", [&](std::string* b) { put_u64(b, index + 16, 5); });
  expect_input_error([&] { TokenFile::open(order, "data.train"); },
                     {"data.train: " + order, "out of order", "document 2 starts at 5",
                      "after document 1 at 10"});
  const std::string dup = variant("dup.bin", [&](std::string* b) { put_u64(b, index + 16, 10); });
  expect_input_error([&] { TokenFile::open(dup); }, {dup, "out of order", "document 2"});
  const std::string range = variant("range.bin", [&](std::string* b) { put_u64(b, index + 24, 100); });
  expect_input_error([&] { TokenFile::open(range, "data.val"); },
                     {"data.val: " + range, "out of range", "document 3 starts at 100",
                      "100 tokens"});
  const std::string first = variant("first.bin", [&](std::string* b) { put_u64(b, index, 1); });
  expect_input_error([&] { TokenFile::open(first); }, {first, "document 0 starts at 1, not 0"});
  // The header's document count against the file size: one entry more than present reads as
  // truncated, one fewer leaves 8 extra bytes.
  const std::string more = variant("more.bin", [&](std::string* b) { put_u64(b, 32, 5); });
  expect_input_error([&] { TokenFile::open(more); },
                     {more, "is truncated", "5-entry document index", "has 296 bytes"});
  const std::string fewer = variant("fewer.bin", [&](std::string* b) { put_u64(b, 32, 3); });
  expect_input_error([&] { TokenFile::open(fewer); },
                     {fewer, "is damaged", "3-entry document index (288 bytes)", "has 296 bytes"});
  const std::string huge = variant("hugedocs.bin", [&](std::string* b) { put_u64(b, 32, ~0ull); });
  expect_input_error([&] { TokenFile::open(huge); }, {huge, "truncated", "over 2^64"});
  write_bytes(path("short2.bin"), good.substr(0, 40));
  expect_input_error([&] { TokenFile::open(path("short2.bin")); },
                     {"short2.bin", "fewer than the 64-byte version-2 header"});
  // An index for a file with no tokens.
  write_token_file(path("none.bin"), {}, 2);
  std::string none = read_bytes(path("none.bin"));
  put_u64(&none, 32, 1);
  none += std::string(8, '\0');
  write_bytes(path("none.bin"), none);
  expect_input_error([&] { TokenFile::open(path("none.bin")); }, {"none.bin", "no tokens"});

  // The writer refuses the same mistakes.
  expect_input_error([&] { write_token_file(path("w.bin"), tokens, 2, {0, 20, 10}); },
                     {"w.bin", "out of order"});
  expect_input_error([&] { write_token_file(path("w.bin"), tokens, 2, {0, 100}); },
                     {"w.bin", "out of range"});
  expect_input_error([&] { write_token_file(path("w.bin"), tokens, 2, {3}); },
                     {"w.bin", "not 0"});
  EXPECT_FALSE(fs::exists(path("w.bin")));
}

// ---- tokenizer and prepare-text -----------------------------------------------------------

// Catches: sign extension of bytes >= 128, lost bytes (NUL, newlines), vocab > 256.
TEST(Tokenizer, ByteLevelRoundTrip) {
  std::string text = "Hello, wörld!\n\tcafé ☕";
  for (int b = 0; b < 256; ++b) text += static_cast<char>(b);
  std::vector<uint32_t> t = ByteTokenizer::encode(text);
  ASSERT_EQ(t.size(), text.size());
  for (uint32_t x : t) EXPECT_LT(x, ByteTokenizer::kVocabSize);
  EXPECT_EQ(t[0], uint32_t('H'));
  EXPECT_EQ(ByteTokenizer::decode(t), text);
  const std::vector<int32_t> s = {72, 105, 300, -1};
  EXPECT_EQ(ByteTokenizer::decode(s.data(), s.size()), "Hi??");
}

// Catches: wrong split point, lost or duplicated tokens between train and val, documents run
// together, val file name not the documented one.
TEST_F(DataTest, PrepareTextSplitsTrainAndVal) {
  write_bytes(path("a.txt"), "In the beginning was the text.\nSecond line");
  write_bytes(path("b.txt"), "Another file.\n");
  std::ostringstream log;
  const std::string out = path("sub/corpus.bin");
  PrepareTextResult r = prepare_text({path("a.txt"), path("b.txt")}, out, 0.25, 2, &log);
  const std::string all = "In the beginning was the text.\nSecond line\nAnother file.\n";
  EXPECT_EQ(r.val_path, path("sub/corpus.val.bin"));
  EXPECT_EQ(r.train_tokens + r.val_tokens, all.size());
  EXPECT_EQ(r.val_tokens, uint64_t(std::llround(0.25 * all.size())));
  // The cut falls where b.txt starts: one whole document on each side.
  EXPECT_EQ(r.train_documents, 1u);
  EXPECT_EQ(r.val_documents, 1u);

  TokenFile train = TokenFile::open(out);
  TokenFile val = TokenFile::open(r.val_path);
  EXPECT_EQ(train.width(), 2);
  std::vector<int32_t> t(train.size()), v(val.size());
  train.read(0, t.size(), t.data());
  val.read(0, v.size(), v.data());
  EXPECT_EQ(ByteTokenizer::decode(t.data(), t.size()) + ByteTokenizer::decode(v.data(), v.size()),
            all);
  const std::string line = log.str();
  EXPECT_NE(line.find("corpus.bin"), std::string::npos) << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;

  // No val fraction: one file, no .val.bin.
  PrepareTextResult r2 = prepare_text({path("b.txt")}, path("only.bin"), 0.0, 4, nullptr);
  EXPECT_TRUE(r2.val_path.empty());
  EXPECT_FALSE(fs::exists(path("only.val.bin")));
  EXPECT_EQ(TokenFile::open(path("only.bin")).width(), 4);
  EXPECT_EQ(val_path_for("x/corpus"), "x/corpus.val.bin");
}

// Catches: documents not recorded per file or per separator match, a separator's text kept,
// empty documents recorded, the straddling document not split between train and val, a bad
// regular expression crashing instead of an input error.
TEST_F(DataTest, PrepareTextWritesDocuments) {
  write_bytes(path("a.txt"), "First para.\n\nSecond para,\nstill second.\n\n\nThird.");
  write_bytes(path("b.txt"), "\n\nOther file.\n");
  auto docs_of = [](const TokenFile& f) {
    std::vector<std::string> docs;
    for (uint64_t d = 0; d < f.document_count(); ++d) {
      const uint64_t b = f.document_start(d);
      const uint64_t e = d + 1 < f.document_count() ? f.document_start(d + 1) : f.size();
      std::vector<int32_t> t(e - b);
      f.read(b, e - b, t.data());
      docs.push_back(ByteTokenizer::decode(t.data(), t.size()));
    }
    return docs;
  };
  PrepareTextResult r =
      prepare_text({path("a.txt"), path("b.txt")}, path("files.bin"), 0.0, 2, nullptr);
  EXPECT_EQ(r.train_documents, 2u);
  EXPECT_EQ(docs_of(TokenFile::open(path("files.bin"))),
            (std::vector<std::string>{"First para.\n\nSecond para,\nstill second.\n\n\nThird.\n",
                                      "\n\nOther file.\n"}));

  std::ostringstream log;
  r = prepare_text({path("a.txt"), path("b.txt")}, path("paras.bin"), 0.0, 2, &log, "\\n\\n+");
  EXPECT_EQ(docs_of(TokenFile::open(path("paras.bin"))),
            (std::vector<std::string>{"First para.", "Second para,\nstill second.", "Third.\n",
                                      "Other file.\n"}));
  EXPECT_EQ(r.train_documents, 4u);
  EXPECT_NE(log.str().find("4 documents"), std::string::npos) << log.str();

  // A zero-width separator (a lookahead at a line start) splits and drops nothing.
  write_bytes(path("book.txt"), "Preface.\nBOOK one\nAlpha.\nBOOK two\nBeta.\n");
  prepare_text({path("book.txt")}, path("books.bin"), 0.0, 2, nullptr, "(?=^BOOK )");
  EXPECT_EQ(docs_of(TokenFile::open(path("books.bin"))),
            (std::vector<std::string>{"Preface.\n", "BOOK one\nAlpha.\n", "BOOK two\nBeta.\n"}));

  // The validation cut falls inside "BOOK two": its head ends train, its tail starts val.
  r = prepare_text({path("book.txt")}, path("split.bin"), 0.2, 2, nullptr, "(?=^BOOK )");
  EXPECT_EQ(r.train_documents, 3u);
  EXPECT_EQ(r.val_documents, 1u);
  const auto train_docs = docs_of(TokenFile::open(path("split.bin")));
  const auto val_docs = docs_of(TokenFile::open(r.val_path));
  ASSERT_EQ(train_docs.size(), 3u);
  ASSERT_EQ(val_docs.size(), 1u);
  EXPECT_EQ(train_docs[2] + val_docs[0], "BOOK two\nBeta.\n");

  expect_input_error(
      [&] { prepare_text({path("a.txt")}, path("x.bin"), 0.0, 2, nullptr, "(unclosed"); },
      {"--doc-separator", "(unclosed", "not a valid regular expression"});
}

// Catches: a missing input file crashing or writing an empty corpus.
TEST_F(DataTest, PrepareTextErrors) {
  write_bytes(path("a.txt"), "text\n");
  expect_input_error([&] { prepare_text({path("nope.txt")}, path("o.bin"), 0.1, 2, nullptr); },
                     {"nope.txt", "cannot read"});
  expect_input_error([&] { prepare_text({}, path("o.bin"), 0.1, 2, nullptr); }, {"no input"});
  expect_input_error([&] { prepare_text({path("a.txt")}, path("o.bin"), 1.0, 2, nullptr); },
                     {"--val-fraction"});
  expect_input_error([&] { prepare_text({path("a.txt")}, path("o.bin"), 0.1, 8, nullptr); },
                     {"--width"});
  write_bytes(path("empty.txt"), "");
  expect_input_error([&] { prepare_text({path("empty.txt")}, path("o.bin"), 0.0, 2, nullptr); },
                     {"no text"});
}

// ---- the text sampler ---------------------------------------------------------------------

// Catches: a model whose embedding is smaller than the data's ids (out-of-bounds reads).
TEST_F(DataTest, VocabularyMismatch) {
  std::vector<uint32_t> tokens = random_tokens(3, 5000, 256);
  tokens[42] = 300;
  write_token_file(path("big.bin"), tokens, 2);
  write_token_file(path("ok.bin"), random_tokens(4, 5000, 256), 2);
  expect_input_error(
      [&] { make_dataset(text_config(path("big.bin")), Split::kTrain); },
      {"vocabulary mismatch: data.train", "has token ids up to 300", "model.vocab_size is 256"});
  expect_input_error(
      [&] { make_dataset(text_config(path("ok.bin"), path("big.bin")), Split::kVal); },
      {"vocabulary mismatch: data.val", "up to 300"});
  Config c = text_config(path("big.bin"));
  c.model.vocab_size = 301;
  EXPECT_EQ(make_dataset(c, Split::kTrain)->min_vocab(), 301);

  Config synth;
  synth.data.task = Task::kPasskey;
  synth.model.vocab_size = 100;
  expect_input_error([&] { make_dataset(synth, Split::kTrain); }, {"vocabulary mismatch"});
}

// Catches: targets not shifted by one, windows not contiguous in the file, held-out tail leaking
// into training windows (or val windows outside it).
TEST_F(DataTest, TextWindowsAndHeldOutTail) {
  const uint64_t n = 20000;
  std::vector<uint32_t> tokens(n);
  for (uint64_t i = 0; i < n; ++i) tokens[i] = uint32_t(i);  // position == token id
  write_token_file(path("pos.bin"), tokens, 4);
  Config c = text_config(path("pos.bin"));
  c.model.vocab_size = int(n);
  auto train = make_dataset(c, Split::kTrain);
  auto val = make_dataset(c, Split::kVal);
  EXPECT_FALSE(train->has_accuracy());
  const int seq = 64;
  const uint64_t tail = n - n / 10;
  Sample s;
  for (uint64_t i = 0; i < 300; ++i) {
    train->sample(5, i, seq, &s);
    ASSERT_EQ(s.inputs.size(), size_t(seq));
    for (int j = 0; j < seq; ++j) {
      ASSERT_EQ(s.inputs[j], s.inputs[0] + j);
      ASSERT_EQ(s.targets[j], s.inputs[j] + 1);
      ASSERT_EQ(s.answer[j], 0);
    }
    EXPECT_LE(uint64_t(s.targets.back()), tail - 1) << "training window enters the val tail";
    val->sample(5, i, seq, &s);
    EXPECT_GE(uint64_t(s.inputs.front()), tail) << "val window outside the held-out tail";
    EXPECT_LE(uint64_t(s.targets.back()), n - 1);
  }

  // Too little text for the sequence length: an input error before training.
  write_token_file(path("tiny.bin"), random_tokens(5, 50, 256), 2);
  expect_input_error([&] { make_dataset(text_config(path("tiny.bin")), Split::kTrain); },
                     {"tiny.bin", "too few"});
  expect_input_error([&] { make_dataset(text_config(""), Split::kTrain); }, {"data.train"});
}

// Catches: a token id above the header's vocab_size (damaged file) reaching the embedding.
TEST_F(DataTest, TextRejectsTokensBeyondHeaderVocab) {
  write_token_file(path("v.bin"), std::vector<uint32_t>(200, 10), 2);
  std::string bytes = read_bytes(path("v.bin"));
  bytes[24] = 5;  // header vocab_size 11 -> 5
  write_bytes(path("v.bin"), bytes);
  Config c = text_config(path("v.bin"));
  auto ds = make_dataset(c, Split::kTrain);
  Sample s;
  expect_input_error([&] { ds->sample(0, 0, 64, &s); }, {"v.bin", "damaged"});
}

// ---- determinism --------------------------------------------------------------------------

std::vector<Config> all_task_configs(const std::string& text_file) {
  Config text = text_config(text_file);
  text.train.seq_len = 128;
  Config passkey;
  passkey.data.task = Task::kPasskey;
  passkey.train.seq_len = 128;
  passkey.run.seed = 7;
  Config recall;
  recall.data.task = Task::kRecall;
  recall.train.seq_len = 128;
  recall.run.seed = 7;
  Config hay = passkey;
  hay.data.train = text_file;
  return {text, passkey, recall, hay};
}

// Catches: samples that depend on a shared RNG's history, on the dataset instance, or that
// collide across index, step, seed or split (two replicas training on the same sample).
TEST_F(DataTest, SamplesArePureFunctionsOfSeedSplitStepIndex) {
  write_token_file(path("text.bin"), random_tokens(11, 30000, 256), 2);
  for (const Config& c : all_task_configs(path("text.bin"))) {
    SCOPED_TRACE("task " + to_string(c.data.task) + (c.data.train.empty() ? "" : " with haystack"));
    auto a = make_dataset(c, Split::kTrain);
    auto b = make_dataset(c, Split::kTrain);
    Config other_seed = c;
    other_seed.run.seed = 8;
    auto d = make_dataset(other_seed, Split::kTrain);
    auto v = make_dataset(c, Split::kVal);
    Sample x, y;
    for (uint64_t step : {0ull, 1ull, 1000000007ull}) {
      for (uint64_t i = 0; i < 8; ++i) {
        a->sample(step, i, 128, &x);
        b->sample(step, i, 128, &y);
        EXPECT_TRUE(same(x, y)) << "step " << step << " index " << i;
        a->sample(step, i + 1, 128, &y);
        EXPECT_FALSE(same(x, y)) << "indices " << i << " and " << i + 1 << " coincide";
        a->sample(step + 1, i, 128, &y);
        EXPECT_FALSE(same(x, y)) << "steps " << step << " and " << step + 1 << " coincide";
        d->sample(step, i, 128, &y);
        EXPECT_FALSE(same(x, y)) << "seeds 7 and 8 coincide";
        v->sample(step, i, 128, &y);
        EXPECT_FALSE(same(x, y)) << "train and val coincide";
      }
    }
  }
}

// Catches: a layout that asks for samples in another order (other dp/grad_accum split, other
// rank) seeing other data.
TEST_F(DataTest, SamplesDoNotDependOnCallOrder) {
  write_token_file(path("text.bin"), random_tokens(12, 30000, 256), 2);
  for (const Config& c : all_task_configs(path("text.bin"))) {
    SCOPED_TRACE("task " + to_string(c.data.task));
    auto ds = make_dataset(c, Split::kTrain);
    std::vector<Sample> forward(24);
    for (int k = 0; k < 24; ++k) ds->sample(k / 8, k % 8, 128, &forward[k]);
    Sample s;
    for (int k = 23; k >= 0; --k) {
      ds->sample(99, k, 128, &s);  // unrelated calls in between
      ds->sample(k / 8, k % 8, 128, &s);
      EXPECT_TRUE(same(s, forward[k])) << "sample " << k;
    }
  }
}

// ---- packed documents ---------------------------------------------------------------------

// The checks every packed sample must pass: doc counts up from 0 in steps of one, pos restarts
// at 0 exactly where doc changes (and at the sample start), and no target crosses a document
// boundary: the last token of a document has target -1, never the next document's first token.
void expect_packed_structure(const Sample& s, int seq_len) {
  ASSERT_EQ(s.inputs.size(), size_t(seq_len));
  ASSERT_EQ(s.targets.size(), size_t(seq_len));
  ASSERT_EQ(s.answer.size(), size_t(seq_len));
  ASSERT_EQ(s.doc.size(), size_t(seq_len));
  ASSERT_EQ(s.pos.size(), size_t(seq_len));
  EXPECT_EQ(s.doc[0], 0);
  EXPECT_EQ(s.pos[0], 0);
  for (int i = 0; i + 1 < seq_len; ++i) {
    if (s.doc[i + 1] != s.doc[i]) {
      ASSERT_EQ(s.doc[i + 1], s.doc[i] + 1) << "position " << i;
      ASSERT_EQ(s.pos[i + 1], 0) << "position " << i + 1;
      ASSERT_EQ(s.targets[i], -1) << "target crosses the boundary after position " << i;
      ASSERT_NE(s.targets[i], s.inputs[i + 1]) << "target is the next document's first token";
    } else {
      ASSERT_EQ(s.pos[i + 1], s.pos[i] + 1) << "position " << i + 1;
    }
  }
}

// Documents of mixed lengths (shorter than, about, and several times seq_len) whose token ids
// are their offsets in the file, so a sample shows where it was read from.
struct DocCorpus {
  std::vector<uint32_t> tokens;
  std::vector<uint64_t> starts;
};
DocCorpus doc_corpus(uint64_t seed, int docs) {
  DocCorpus c;
  SampleRng rng(seed);
  const uint64_t lengths[] = {1, 5, 40, 63, 64, 65, 150, 400};
  for (int d = 0; d < docs; ++d) {
    c.starts.push_back(c.tokens.size());
    const uint64_t len = lengths[rng.below(8)];
    for (uint64_t i = 0; i < len; ++i) c.tokens.push_back(uint32_t(c.tokens.size()));
  }
  return c;
}

// Catches: samples that start elsewhere than at a document start or a seq_len-aligned offset
// inside a long document, doc/pos wrong, targets that predict across a boundary (the loss
// learning that one document follows another), a packed sample that is not a pure function
// of its arguments, the held-out split cutting through a document when a start is close by.
TEST_F(DataTest, PackedTextSamples) {
  const DocCorpus corpus = doc_corpus(31, 400);
  const uint64_t n = corpus.tokens.size();
  write_token_file(path("docs.bin"), corpus.tokens, 4, corpus.starts);
  Config c = text_config(path("docs.bin"));
  c.data.packing = Packing::kDocuments;
  c.model.vocab_size = int(n);
  const int seq = c.train.seq_len;
  auto train = make_dataset(c, Split::kTrain);
  auto again = make_dataset(c, Split::kTrain);
  auto val = make_dataset(c, Split::kVal);
  EXPECT_NE(train->describe().find("packed documents"), std::string::npos) << train->describe();

  auto doc_of = [&](uint64_t t) {
    return uint64_t(std::upper_bound(corpus.starts.begin(), corpus.starts.end(), t) -
                    corpus.starts.begin() - 1);
  };
  uint64_t train_end = 0;
  Sample s, t;
  std::set<uint64_t> starts_seen;
  int aligned = 0, at_doc_start = 0, several_docs = 0;
  for (uint64_t i = 0; i < 400; ++i) {
    SCOPED_TRACE("sample " + std::to_string(i));
    train->sample(3, i, seq, &s);
    expect_packed_structure(s, seq);
    again->sample(3, i, seq, &t);
    EXPECT_TRUE(same(s, t)) << "same arguments, another sample";
    const uint64_t start = uint64_t(s.inputs[0]);
    starts_seen.insert(start);
    const uint64_t d0 = doc_of(start);
    const uint64_t into = start - corpus.starts[d0];
    ASSERT_EQ(into % seq, 0u) << "start " << start << " is " << into << " into its document";
    (into == 0 ? at_doc_start : aligned) += 1;
    several_docs += s.doc.back() > 0;
    for (int j = 0; j < seq; ++j) {
      const uint64_t tok = start + j;
      ASSERT_EQ(uint64_t(s.inputs[j]), tok) << "not consecutive";
      const uint64_t d = doc_of(tok);
      ASSERT_EQ(uint64_t(s.doc[j]), d - d0);
      ASSERT_EQ(uint64_t(s.pos[j]), d == d0 ? tok - start : tok - corpus.starts[d]);
      const bool last = d + 1 < corpus.starts.size() && corpus.starts[d + 1] == tok + 1;
      ASSERT_EQ(s.targets[j], last ? -1 : int32_t(tok + 1));
      ASSERT_EQ(s.answer[j], 0);
    }
    train_end = std::max(train_end, start + seq);
  }
  EXPECT_GT(at_doc_start, 50);
  EXPECT_GT(aligned, 20);
  EXPECT_GT(several_docs, 100);
  EXPECT_GT(starts_seen.size(), 250u);

  // Train and validation share no document: the boundary is a document start, train's last
  // token before it, validation's first at or after it.
  uint64_t val_begin = n;
  for (uint64_t i = 0; i < 400; ++i) {
    val->sample(4, i, seq, &t);
    expect_packed_structure(t, seq);
    val_begin = std::min(val_begin, uint64_t(t.inputs[0]));
  }
  EXPECT_TRUE(std::binary_search(corpus.starts.begin(), corpus.starts.end(), val_begin))
      << "validation starts inside a document at " << val_begin;
  EXPECT_LT(train_end, val_begin);
  EXPECT_GE(val_begin, n - 2 * (n / 10));
  EXPECT_LE(val_begin, n - n / 20);
}

// Catches: a file without an index rejected, or packed with made-up boundaries, instead of
// being one document (and saying so once, on stderr); samples of it starting off the
// seq_len grid.
TEST_F(DataTest, PackedTextWithoutIndexIsOneDocument) {
  const uint64_t n = 5000;
  std::vector<uint32_t> tokens(n);
  for (uint64_t i = 0; i < n; ++i) tokens[i] = uint32_t(i);
  write_bytes(path("v1.bin"), version1_bytes(tokens, 4));
  Config c = text_config(path("v1.bin"));
  c.data.packing = Packing::kDocuments;
  c.model.vocab_size = int(n);
  ::testing::internal::CaptureStderr();
  auto train = make_dataset(c, Split::kTrain);
  auto val = make_dataset(c, Split::kVal);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "data.train: " + path("v1.bin") +
                     " has no document index; packing it as one document\n");
  Sample s;
  for (uint64_t i = 0; i < 100; ++i) {
    train->sample(0, i, 64, &s);
    expect_packed_structure(s, 64);
    EXPECT_EQ(s.inputs[0] % 64, 0) << "start off the grid";
    EXPECT_EQ(s.doc.back(), 0);
    EXPECT_EQ(s.targets.back(), s.inputs.back() + 1);
    EXPECT_LE(uint64_t(s.targets.back()), n - n / 10 - 1);
    // The one document is split at the token cut: validation fragments count from it.
    val->sample(0, i, 64, &s);
    EXPECT_EQ((s.inputs[0] - int32_t(n - n / 10)) % 64, 0);
    EXPECT_EQ(s.pos[63], 63);
  }
}

// Catches: a model reading doc/pos from an unpacked sample that left them empty or stale
// (from an earlier packed sample in the same buffer).
TEST_F(DataTest, UnpackedSamplesAreOneStream) {
  write_token_file(path("text.bin"), random_tokens(13, 30000, 256), 2, {0, 100, 5000});
  for (const Config& c : all_task_configs(path("text.bin"))) {
    SCOPED_TRACE("task " + to_string(c.data.task));
    auto ds = make_dataset(c, Split::kTrain);
    Sample s;
    s.doc.assign(128, 7);
    s.pos.assign(3, 7);
    for (uint64_t i = 0; i < 20; ++i) {
      ds->sample(0, i, 128, &s);
      ASSERT_EQ(s.doc, std::vector<int32_t>(128, 0));
      ASSERT_EQ(s.pos.size(), 128u);
      for (int j = 0; j < 128; ++j) ASSERT_EQ(s.pos[j], j);
    }
  }
}

// Catches: packed synthetic samples with one prompt only, prompts that do not fill seq_len or
// are shorter than the task's shortest prompt, an answer of some prompt not marked (the needle
// evaluation on packed sequences would miss it) or marked on the wrong positions, a prompt's
// last token predicting the next prompt.
TEST(PackedSynthetic, SeveralPromptsWithTheirAnswers) {
  for (const Task task : {Task::kPasskey, Task::kRecall}) {
    for (int seq_len : {96, 512, 4096}) {
      SCOPED_TRACE(to_string(task) + " seq_len " + std::to_string(seq_len));
      Config c;
      c.data.task = task;
      c.data.packing = Packing::kDocuments;
      c.data.recall_pairs = 3;
      c.train.seq_len = seq_len;
      auto ds = make_dataset(c, Split::kTrain);
      const int answer_len = task == Task::kPasskey ? c.data.passkey_digits : kRecallValueDigits;
      const int min_doc = (task == Task::kPasskey ? passkey_min_seq_len(c.data.passkey_digits)
                                             : recall_min_seq_len(3)) + 1;
      std::set<int> prompt_counts;
      Sample s;
      for (uint64_t i = 0; i < 40; ++i) {
        ds->sample(2, i, seq_len, &s);
        expect_packed_structure(s, seq_len);
        const int docs = s.doc.back() + 1;
        prompt_counts.insert(docs);
        EXPECT_LE(docs, kMaxPackedPrompts);
        EXPECT_EQ(answer_count(s), docs * answer_len);
        // Each document: long enough, its answers just before its last token, and the
        // answer is what the prompt hid earlier in the same document.
        int begin = 0;
        for (int d = 0; d < docs; ++d) {
          int end = begin;
          while (end < seq_len && s.doc[end] == d) ++end;
          EXPECT_GE(end - begin, min_doc) << "document " << d;
          for (int j = begin; j < end; ++j)
            ASSERT_EQ(s.answer[j], j >= end - 1 - answer_len && j < end - 1) << "position " << j;
          std::string answer;
          for (int j = end - 1 - answer_len; j < end - 1; ++j) answer += char(s.targets[j]);
          ASSERT_EQ(answer.back(), char(s.inputs[end - 1]));
          const std::string text =
              ByteTokenizer::decode(s.inputs.data() + begin, size_t(end - 1 - answer_len - begin));
          EXPECT_NE(text.find(task == Task::kPasskey ? answer : ":" + answer), std::string::npos)
              << "answer " << answer << " not hidden in its own prompt: " << text;
          begin = end;
        }
        ASSERT_EQ(begin, seq_len);
        EXPECT_TRUE(exact_match(s, s.targets));
      }
      if (seq_len >= 2 * min_doc) {
        EXPECT_EQ(*prompt_counts.begin(), 2) << "never two prompts";
        EXPECT_GT(prompt_counts.size(), 1u) << "always the same number of prompts";
      }
    }
  }
  Config tight;
  tight.data.task = Task::kPasskey;
  tight.data.packing = Packing::kDocuments;
  tight.train.seq_len = passkey_min_seq_len(5);
  expect_input_error([&] { make_dataset(tight, Split::kTrain); }, {"too short", "packed"});
}

// ---- passkey ------------------------------------------------------------------------------

// Catches: key at the wrong depth, answer mask off by one (marking the question, or missing a
// digit), wrong length, targets not the inputs shifted, the compact wording not used when the
// sentences would crowd out the haystack (or used when they fit).
TEST(Passkey, StructureAtExplicitDepths) {
  for (int seq_len : {64, 128, 159, 257, 1024}) {
    for (double depth : {0.0, 0.1, 0.25, 0.5, 0.9, 1.0}) {
      SCOPED_TRACE("seq_len " + std::to_string(seq_len) + " depth " + std::to_string(depth));
      PasskeySpec spec;
      spec.seq_len = seq_len;
      spec.key = "48213";
      spec.depth = depth;
      spec.seed = 99;
      Sample s;
      PasskeyInfo info = make_passkey(spec, &s);
      EXPECT_EQ(info.compact, seq_len < 159);  // full sentences: 80 tokens, half the prompt
      ASSERT_EQ(s.inputs.size(), size_t(seq_len));
      ASSERT_EQ(s.targets.size(), size_t(seq_len));
      ASSERT_EQ(s.answer.size(), size_t(seq_len));
      for (int i = 0; i + 1 < seq_len; ++i) ASSERT_EQ(s.targets[i], s.inputs[i + 1]);
      const std::string in = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
      const std::string sentence =
          info.compact ? "key 48213. " : "The pass key is 48213. Remember it. ";
      const std::string question =
          info.compact ? "\nkey? 4821" : "\nWhat is the pass key? The pass key is 4821";
      EXPECT_EQ(info.haystack_tokens, seq_len + 1 - int(sentence.size() + question.size()) - 1);

      // The key sentence where info says, at the claimed depth (moved back at most to the
      // start of a word).
      EXPECT_EQ(in.substr(info.key_sentence, sentence.size()), sentence);
      EXPECT_EQ(in.substr(info.key_digits, 5), "48213");
      const double want = depth * info.haystack_tokens;
      EXPECT_LE(info.key_sentence, want + 1e-9);
      EXPECT_GE(info.key_sentence, want - 32);
      EXPECT_EQ(in.find(sentence), size_t(info.key_sentence));

      // The question at the end; the answer positions predict exactly the key's digits.
      EXPECT_EQ(in.substr(info.question), question);
      EXPECT_EQ(answer_count(s), 5);
      for (int i = 0; i < seq_len; ++i) EXPECT_EQ(s.answer[i], i >= seq_len - 5 ? 1 : 0);
      EXPECT_EQ(info.answer_begin, seq_len - 5);
      std::string answer;
      for (int i = info.answer_begin; i < seq_len; ++i) answer += char(s.targets[i]);
      EXPECT_EQ(answer, "48213");
    }
  }
}

// Catches: the sampler ignoring passkey_digits or the depth range, or drawing the same key.
TEST(Passkey, DatasetDrawsKeysAndDepthsInRange) {
  Config c;
  c.data.task = Task::kPasskey;
  c.data.passkey_digits = 7;
  c.data.passkey_min_depth = 0.2;
  c.data.passkey_max_depth = 0.4;
  c.train.seq_len = 512;
  auto ds = make_dataset(c, Split::kTrain);
  EXPECT_TRUE(ds->has_accuracy());
  std::set<std::string> keys;
  std::regex key_re("The pass key is ([0-9]+)\\. Remember it\\.");
  Sample s;
  for (uint64_t i = 0; i < 50; ++i) {
    ds->sample(3, i, 512, &s);
    ASSERT_EQ(s.inputs.size(), 512u);
    EXPECT_EQ(answer_count(s), 7);
    const std::string in = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
    std::smatch m;
    ASSERT_TRUE(std::regex_search(in, m, key_re)) << in;
    const std::string key = m[1];
    EXPECT_EQ(key.size(), 7u);
    keys.insert(key);
    const int hay = 513 - 2 * 7 - 70;  // haystack tokens
    EXPECT_GE(m.position(0), 0.2 * hay - 32);
    EXPECT_LE(m.position(0), 0.4 * hay);
    std::string answer;
    for (int j = 512 - 7; j < 512; ++j) answer += char(s.targets[j]);
    EXPECT_EQ(answer, key);
    EXPECT_EQ(in.find("What is the pass key? The pass key is " + key.substr(0, 6)),
              in.size() - 38 - 6);
  }
  EXPECT_GT(keys.size(), 45u);
}

// Catches: a real-text haystack that is not a contiguous window of the file, or that ignores
// its range.
TEST_F(DataTest, PasskeyWithRealTextHaystack) {
  std::string text;
  for (int i = 0; text.size() < 20000; ++i) text += "verse " + std::to_string(i) + " of the book. ";
  write_bytes(path("book.txt"), text);
  prepare_text({path("book.txt")}, path("book.bin"), 0.0, 2, nullptr);
  TokenFile book = TokenFile::open(path("book.bin"));
  PasskeySpec spec;
  spec.seq_len = 1024;
  spec.key = "0123";
  spec.depth = 0.5;
  spec.seed = 5;
  spec.haystack = &book;
  spec.haystack_begin = 1000;
  spec.haystack_end = 5000;
  Sample s;
  PasskeyInfo info = make_passkey(spec, &s);
  const std::string in = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
  const std::string before = in.substr(0, info.key_sentence);
  const int key_text = 35;  // "The pass key is 0123. Remember it. "
  const std::string after =
      in.substr(info.key_sentence + key_text, info.question - info.key_sentence - key_text);
  const size_t at = text.find(before + after);
  ASSERT_NE(at, std::string::npos) << "haystack is not a contiguous window of the file";
  EXPECT_GE(at, 1000u);
  EXPECT_LE(at + before.size() + after.size(), 5000u);

  spec.haystack_end = 1100;
  expect_input_error([&] { make_passkey(spec, &s); }, {"book.bin", "fewer than"});
  std::vector<uint32_t> wide = random_tokens(1, 3000, 300);
  write_token_file(path("wide.bin"), wide, 2);
  TokenFile wide_file = TokenFile::open(path("wide.bin"));
  spec.haystack = &wide_file;
  spec.haystack_begin = spec.haystack_end = 0;
  expect_input_error([&] { make_passkey(spec, &s); }, {"byte-level"});
}

// A passkey prompt in a real tokenizer's tokens (data.prompt_tokens): the stream is exactly
// haystack[0..p) intro KEY outro haystack[p..H) question KEY, each piece the file's ids, each
// digit its token, the haystack a window of the token file; p is the drawn depth (no snapping
// to a byte-level word start). Catches: byte ids leaking into a tokenized prompt, digits not
// mapped, the key sentence moved, a haystack of another tokenizer accepted.
TEST_F(DataTest, PasskeyWithTokenizedPrompts) {
  const std::string json = R"({"format": "ringtrain-prompt-tokens", "version": 1, "vocab_size": 500,
    "digits": [400, 401, 402, 403, 404, 405, 406, 407, 408, 409],
    "full": {"intro": [300, 301], "outro": [302], "question": [303, 304, 305]},
    "compact": {"intro": [310], "outro": [311], "question": [312]}})";
  write_bytes(path("prompts.json"), json);
  const PromptTokens words = PromptTokens::load(path("prompts.json"), "data.prompt_tokens");
  std::vector<uint32_t> text(5000);
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<uint32_t>(i % 250);
  text[0] = 499;  // the vocabulary is the tokenizer's (500); windows start at 1
  write_token_file(path("bpe.bin"), text, 2);
  TokenFile hay = TokenFile::open(path("bpe.bin"));
  for (double depth : {0.0, 0.37, 1.0}) {
    PasskeySpec spec;
    spec.seq_len = 200;
    spec.key = "2907";
    spec.depth = depth;
    spec.seed = 11;
    spec.haystack = &hay;
    spec.haystack_begin = 1;
    spec.prompt = &words;
    Sample s;
    const PasskeyInfo info = make_passkey(spec, &s);
    const int fixed = 2 + 1 + 3 + 2 * 4;
    ASSERT_EQ(info.haystack_tokens, 201 - fixed);
    EXPECT_EQ(info.key_sentence, static_cast<int>(std::floor(depth * info.haystack_tokens)));
    std::vector<int32_t> t = s.inputs;
    t.push_back(s.targets.back());
    const int p = info.key_sentence, h = info.haystack_tokens;
    const int32_t first = p > 0 ? t[0] : t[7];  // the window's first token (after the key sentence)
    std::vector<int32_t> want;
    for (int i = 0; i < p; ++i) want.push_back((first + i) % 250);
    for (int32_t id : {300, 301, 402, 409, 400, 407, 302}) want.push_back(id);
    for (int i = p; i < h; ++i) want.push_back((first + i) % 250);
    for (int32_t id : {303, 304, 305, 402, 409, 400, 407}) want.push_back(id);
    EXPECT_EQ(t, want) << "depth " << depth;
    EXPECT_EQ(info.key_digits, p + 2);
    EXPECT_EQ(info.answer_begin, 200 - 4);
  }
  // Another tokenizer's text, or byte-level text, is not a haystack for these words.
  write_token_file(path("other.bin"), std::vector<uint32_t>(3000, 7), 2);
  TokenFile other = TokenFile::open(path("other.bin"));
  PasskeySpec spec;
  spec.seq_len = 200;
  spec.key = "12";
  spec.haystack = &other;
  spec.prompt = &words;
  Sample s;
  expect_input_error([&] { make_passkey(spec, &s); }, {"other.bin", "vocabulary of 8", "500"});
}

// Catches: a prompt-tokens file trusted without checks.
TEST_F(DataTest, BadPromptTokenFilesAreInputErrorsNamingTheKey) {
  const std::string good_pieces = R"("full": {"intro": [1], "outro": [2], "question": [3]},
    "compact": {"intro": [4], "outro": [5], "question": [6]})";
  const std::string digits = R"("digits": [10, 11, 12, 13, 14, 15, 16, 17, 18, 19])";
  auto doc = [&](const std::string& head, const std::string& d, const std::string& pieces) {
    return "{" + head + ", " + d + ", " + pieces + "}";
  };
  const std::string head = R"("format": "ringtrain-prompt-tokens", "version": 1, "vocab_size": 20)";
  EXPECT_NO_THROW(PromptTokens::parse(doc(head, digits, good_pieces), "p.json"));
  auto bad = [&](const std::string& text, const std::vector<std::string>& parts) {
    expect_input_error([&] { PromptTokens::parse(text, "p.json"); }, parts);
  };
  bad("{not json", {"p.json", "not valid JSON"});
  bad("[1, 2]", {"p.json", "object"});
  bad(doc(R"("format": "x", "version": 1, "vocab_size": 20)", digits, good_pieces), {"p.json", "format"});
  bad(doc(R"("format": "ringtrain-prompt-tokens", "version": 2, "vocab_size": 20)", digits, good_pieces),
      {"p.json", "version"});
  bad(doc(R"("format": "ringtrain-prompt-tokens", "version": 1, "vocab_size": -3)", digits, good_pieces),
      {"p.json", "vocab_size"});
  bad(doc(head, R"("digits": [1, 2, 3])", good_pieces), {"p.json", "10 token ids"});
  bad(doc(head, R"("digits": [10, 11, 12, 13, 14, 15, 16, 17, 18, 20])", good_pieces),
      {"p.json", "digits", "20"});
  bad(doc(head, digits, R"("full": {"intro": [], "outro": [2], "question": [3]},
      "compact": {"intro": [4], "outro": [5], "question": [6]})"), {"p.json", "full.intro"});
  bad(doc(head, digits, R"("full": {"intro": [1], "outro": [-2], "question": [3]},
      "compact": {"intro": [4], "outro": [5], "question": [6]})"), {"p.json", "full.outro", "-2"});
  bad(doc(head, digits, R"("full": {"intro": [1], "outro": [2], "question": [3]})"),
      {"p.json", "compact"});
  bad(doc(head, digits, R"("full": {"intro": [1], "outro": [2], "question": ["a"]},
      "compact": {"intro": [4], "outro": [5], "question": [6]})"), {"p.json", "full.question"});
  expect_input_error([&] { PromptTokens::load(path("missing.json"), "data.prompt_tokens"); },
                     {"data.prompt_tokens", "missing.json"});
}

// Catches: bad needle parameters (bad-input cases) crashing instead of erroring.
TEST(Passkey, BadSpecsAreInputErrors) {
  PasskeySpec spec;
  spec.seq_len = 256;
  spec.key = "12345";
  Sample s;
  spec.depth = 1.5;
  expect_input_error([&] { make_passkey(spec, &s); }, {"depth 1.5", "[0, 1]"});
  spec.depth = -0.1;
  expect_input_error([&] { make_passkey(spec, &s); }, {"depth"});
  spec.depth = 0.5;
  spec.key = "12a";
  expect_input_error([&] { make_passkey(spec, &s); }, {"digits"});
  spec.key = "12345";
  spec.seq_len = passkey_min_seq_len(5) - 1;
  expect_input_error([&] { make_passkey(spec, &s); }, {"too short"});
  spec.seq_len = passkey_min_seq_len(5);
  PasskeyInfo info = make_passkey(spec, &s);  // the shortest prompt works: no filler at all
  EXPECT_EQ(info.haystack_tokens, 0);

  Config c;
  c.data.task = Task::kPasskey;
  c.data.passkey_min_depth = 0.8;
  c.data.passkey_max_depth = 0.2;
  expect_input_error([&] { make_dataset(c, Split::kTrain); }, {"passkey_min_depth"});
  c.data.passkey_min_depth = 0.0;
  c.train.seq_len = 16;
  expect_input_error([&] { make_dataset(c, Split::kTrain); }, {"train.seq_len 16", "too short"});
}

// ---- recall -------------------------------------------------------------------------------

// Catches: a query key that is not among the pairs, an answer that is not its value, duplicate
// keys (ambiguous answers), wrong lengths or answer mask.
TEST(Recall, Structure) {
  Config c;
  c.data.task = Task::kRecall;
  c.data.recall_pairs = 6;
  c.train.seq_len = 300;
  auto ds = make_dataset(c, Split::kTrain);
  EXPECT_TRUE(ds->has_accuracy());
  std::regex pair_re(" ([a-z]{3}):([0-9]{2})");
  Sample s;
  for (uint64_t i = 0; i < 40; ++i) {
    SCOPED_TRACE("sample " + std::to_string(i));
    ds->sample(1, i, 300, &s);
    ASSERT_EQ(s.inputs.size(), 300u);
    ASSERT_EQ(s.targets.size(), 300u);
    for (int j = 0; j + 1 < 300; ++j) ASSERT_EQ(s.targets[j], s.inputs[j + 1]);
    std::string full = ByteTokenizer::decode(s.inputs.data(), s.inputs.size());
    full += char(s.targets.back());
    std::map<std::string, std::string> pairs;
    for (auto it = std::sregex_iterator(full.begin(), full.end(), pair_re);
         it != std::sregex_iterator(); ++it)
      EXPECT_TRUE(pairs.emplace((*it)[1], (*it)[2]).second) << "duplicate key " << (*it)[1];
    EXPECT_EQ(pairs.size(), 6u) << full;
    const size_t nl = full.rfind('\n');
    ASSERT_EQ(nl, full.size() - 7);
    const std::string query = full.substr(nl + 1, 3);
    ASSERT_EQ(full[nl + 4], ':');
    ASSERT_TRUE(pairs.count(query)) << "query " << query << " not among the pairs";
    EXPECT_EQ(full.substr(nl + 5), pairs[query]);
    EXPECT_EQ(answer_count(s), kRecallValueDigits);
    EXPECT_EQ(s.answer[298], 1);
    EXPECT_EQ(s.answer[299], 1);
    EXPECT_EQ(s.answer[297], 0);
  }
  c.train.seq_len = recall_min_seq_len(6) - 1;
  expect_input_error([&] { make_dataset(c, Split::kTrain); }, {"too short"});
  c.train.seq_len = recall_min_seq_len(6);
  auto tight = make_dataset(c, Split::kTrain);
  tight->sample(0, 0, c.train.seq_len, &s);
  EXPECT_EQ(s.inputs.size(), size_t(c.train.seq_len));
}

// ---- accuracy -----------------------------------------------------------------------------

// Catches: accuracy that counts non-answer positions or passes with one wrong digit.
TEST(Accuracy, ExactMatchOnAnswerPositionsOnly) {
  PasskeySpec spec;
  spec.seq_len = 200;
  spec.key = "90210";
  spec.seed = 3;
  Sample s;
  make_passkey(spec, &s);
  std::vector<int32_t> pred = s.targets;
  EXPECT_TRUE(exact_match(s, pred));
  pred[10] = 'Q';  // a filler position: does not count
  EXPECT_TRUE(exact_match(s, pred));
  pred[199] = '9';  // last digit wrong
  EXPECT_FALSE(exact_match(s, pred));
  pred = s.targets;
  pred[195] = '0';  // first digit wrong
  EXPECT_FALSE(exact_match(s, pred));
  Sample text;
  text.targets = {1, 2};
  text.answer = {0, 0};
  EXPECT_FALSE(exact_match(text, std::vector<int32_t>{1, 2}));
}

// Catches: filler of the wrong length or containing digits/colons (which would fake a key).
TEST(Filler, ExactLengthNoDigits) {
  for (int64_t n : {0, 1, 7, 1000}) {
    SampleRng rng(n);
    std::vector<int32_t> out = {'x'};
    append_filler(&rng, n, &out);
    ASSERT_EQ(out.size(), size_t(n + 1));
    for (int32_t t : out) {
      EXPECT_FALSE(t >= '0' && t <= '9');
      EXPECT_NE(t, ':');
      EXPECT_LT(t, 128);
    }
  }
}

}  // namespace
}  // namespace ringtrain
