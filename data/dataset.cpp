#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>

#include "data/token_file.h"
#include "data/tokenizer.h"
#include "src/core/error.h"
#include "src/core/process.h"

namespace ringtrain {

Dataset::~Dataset() = default;

// ---- counter-based randomness -------------------------------------------------------------

namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
// Distinct, arbitrary tags so the train and val streams of one seed never coincide.
uint64_t split_tag(Split split) {
  return split == Split::kTrain ? 0x747261696E000001ull : 0x76616C0000000002ull;
}
}  // namespace

uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

SampleRng SampleRng::for_sample(uint64_t seed, Split split, uint64_t step, uint64_t index) {
  // Each stage xors one field into a bijective mix of the previous stages: for fixed other
  // fields, distinct values of any field give distinct keys. The golden-ratio offsets keep the
  // all-zero tuple away from mix64's fixed point at 0.
  uint64_t h = mix64(seed + kGolden);
  h = mix64(h ^ split_tag(split));
  h = mix64(h ^ (step + 2 * kGolden));
  h = mix64(h ^ (index + 3 * kGolden));
  return SampleRng(h);
}

uint64_t SampleRng::next() {
  state_ += kGolden;
  return mix64(state_);
}

uint64_t SampleRng::below(uint64_t n) {
  RT_CHECK(n > 0, "SampleRng::below(0)");
  return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
}

double SampleRng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

// ---- filler -------------------------------------------------------------------------------

namespace {

// Common English words: filler that reads like text (spaces, word lengths, sentence ends) but
// carries no information a model could use to find a key. No digits, no colons, so neither a
// pass key nor a recall pair can appear by accident.
constexpr std::string_view kWords[] = {
    "the",        "of",     "and",     "to",     "in",      "a",       "is",     "that",
    "for",        "it",     "as",      "was",    "with",    "be",      "by",     "on",
    "not",        "he",     "this",    "are",    "or",      "his",     "from",   "at",
    "which",      "but",    "have",    "an",     "had",     "they",    "you",    "were",
    "their",      "one",    "all",     "we",     "can",     "her",     "has",    "there",
    "been",       "if",     "more",    "when",   "will",    "would",   "who",    "so",
    "no",         "time",   "people",  "water",  "river",   "house",   "green",  "small",
    "large",      "early",  "later",   "under",  "over",    "long",    "short",  "city",
    "field",      "road",   "light",   "night",  "morning", "letter",  "story",  "garden",
    "market",     "winter", "summer",  "bread",  "stone",   "window",  "table",  "friend",
    "mother",     "father", "child",   "school", "music",   "paper",   "quiet",  "bright",
    "slowly",     "often",  "never",   "always", "before",  "after",   "again",  "walked",
    "spoke",      "found",  "looked",  "turned", "carried", "opened",  "called", "thought",
    "remembered", "across", "toward",  "behind", "through", "between", "almost", "perhaps",
    "every",      "other",  "another", "around", "little"};
constexpr int kNumWords = static_cast<int>(sizeof(kWords) / sizeof(kWords[0]));

}  // namespace

void append_filler(SampleRng* rng, int64_t n, std::vector<int32_t>* out) {
  if (n <= 0) return;
  const size_t target = out->size() + static_cast<size_t>(n);
  out->reserve(target + 16);
  while (out->size() < target) {
    // One sentence: 5-14 words, capitalized, a comma now and then, ending in ". ".
    const int words = 5 + static_cast<int>(rng->below(10));
    for (int w = 0; w < words && out->size() < target; ++w) {
      std::string_view word = kWords[rng->below(kNumWords)];
      for (size_t c = 0; c < word.size(); ++c) {
        int ch = static_cast<unsigned char>(word[c]);
        if (w == 0 && c == 0) ch = ch - 'a' + 'A';
        out->push_back(ch);
      }
      if (w + 1 < words) {
        if (w > 1 && rng->below(8) == 0) out->push_back(',');
        out->push_back(' ');
      } else {
        out->push_back('.');
        out->push_back(' ');
      }
    }
  }
  out->resize(target);
}

// ---- passkey ------------------------------------------------------------------------------

namespace {

// How far back from the drawn depth the key sentence may move to start at a word.
constexpr int kSnapWindow = 32;

void append_text(std::string_view text, std::vector<int32_t>* out) {
  ByteTokenizer::encode_append(text, out);
}

void append_ids(const std::vector<int32_t>& ids, std::vector<int32_t>* out) {
  out->insert(out->end(), ids.begin(), ids.end());
}

void append_key(const std::string& key, const PromptTokens& words, std::vector<int32_t>* out) {
  for (char c : key) out->push_back(words.digits[c - '0']);
}

bool is_boundary(const std::vector<int32_t>& hay, int64_t q) {
  return q == 0 || hay[q - 1] == ' ' || hay[q - 1] == '\n';
}

// A sample that is one stream: one document, positions 0..n-1.
void set_one_stream(size_t n, Sample* out) {
  out->doc.assign(n, 0);
  out->pos.resize(n);
  std::iota(out->pos.begin(), out->pos.end(), 0);
}

// Splits the token stream t (seq_len + 1 tokens) into inputs and targets; marks the last
// `answer_len` positions as answers. Copies into out's vectors (which keep their capacity from
// sample to sample), so t can be a reused scratch buffer: no allocation per sample.
void finish_sample(const std::vector<int32_t>& t, int answer_len, Sample* out) {
  const size_t n = t.size() - 1;
  out->targets.assign(t.begin() + 1, t.end());
  out->inputs.assign(t.begin(), t.end() - 1);
  out->answer.assign(n, 0);
  for (size_t i = n - answer_len; i < n; ++i) out->answer[i] = 1;
  set_one_stream(n, out);
}

// Appends the prompt stream t (P + 1 tokens, as finish_sample takes it) to a packed sample as
// document `doc`: all P + 1 tokens are inputs, so the prompt's own last token is an input whose
// target is -1 (the next token belongs to another document); the `answer_len` positions before
// it are answers, as in the unpacked prompt.
void append_document(const std::vector<int32_t>& t, int answer_len, int32_t doc, Sample* out) {
  const size_t first = out->inputs.size();
  const size_t n = t.size();
  out->inputs.insert(out->inputs.end(), t.begin(), t.end());
  out->targets.insert(out->targets.end(), t.begin() + 1, t.end());
  out->targets.push_back(-1);
  out->answer.resize(first + n, 0);
  for (size_t i = n - 1 - answer_len; i < n - 1; ++i) out->answer[first + i] = 1;
  out->doc.resize(first + n, doc);
  for (size_t i = 0; i < n; ++i) out->pos.push_back(static_cast<int32_t>(i));
}

void clear_sample(Sample* out) {
  out->inputs.clear();
  out->targets.clear();
  out->answer.clear();
  out->doc.clear();
  out->pos.clear();
}

// The document lengths of a packed synthetic sample: k documents of at least `min_len` tokens
// each that fill `seq_len` exactly. k is drawn from [2, kMaxPackedPrompts] (fewer when seq_len
// cannot hold that many; 1 when it cannot hold two), and the tokens beyond k * min_len are
// shared out at k - 1 uniform cut points, so short and long prompts mix.
void draw_document_lengths(SampleRng* rng, int seq_len, int min_len, std::vector<int>* lengths) {
  const int most = std::min(kMaxPackedPrompts, seq_len / min_len);
  RT_CHECK(most >= 1, "seq_len ", seq_len, " below a document of ", min_len);
  const int k = most >= 2 ? 2 + static_cast<int>(rng->below(uint64_t(most) - 1)) : 1;
  const int extra = seq_len - k * min_len;
  thread_local std::vector<int> cuts;
  cuts.resize(static_cast<size_t>(k - 1));
  for (int& c : cuts) c = static_cast<int>(rng->below(uint64_t(extra) + 1));
  std::sort(cuts.begin(), cuts.end());
  lengths->clear();
  int prev = 0;
  for (int c : cuts) {
    lengths->push_back(min_len + c - prev);
    prev = c;
  }
  lengths->push_back(min_len + extra - prev);
}

}  // namespace

TokenFile open_token_data(const std::string& path, DataFormat format, const std::string& label) {
  return format == DataFormat::kMegatron ? TokenFile::open_megatron(path, label)
                                         : TokenFile::open(path, label);
}

PromptTokens prompt_tokens_of(const Config& config) {
  const std::string& path = config.data.prompt_tokens;
  return path.empty() ? PromptTokens::bytes() : PromptTokens::load(path, "data.prompt_tokens");
}

void check_haystack_vocab(const TokenFile& file, const PromptTokens& words) {
  if (words.byte_level && file.vocab_size() > ByteTokenizer::kVocabSize)
    input_error("haystack ", file.path(), " has token ids up to ", file.vocab_size() - 1,
                "; byte-level prompts need byte-level text (prepare-text), or set "
                "data.prompt_tokens to the prompts of the file's tokenizer (prepare-data --prompts)");
  if (!words.byte_level && file.vocab_size() != words.vocab_size)
    input_error("haystack ", file.path(), " has a vocabulary of ", file.vocab_size(),
                " but data.prompt_tokens was written for one of ", words.vocab_size,
                "; both must come from the same tokenizer");
}

int passkey_min_seq_len(int digits, const PromptTokens& words) {
  // seq_len + 1 tokens hold both phrases and both copies of the key.
  return static_cast<int>(words.compact.fixed(digits)) - 1;
}

PasskeyInfo make_passkey(const PasskeySpec& spec, Sample* out) {
  const std::string& key = spec.key;
  if (key.empty() ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }))
    input_error("pass key \"", key, "\" must be one or more digits");
  if (!(spec.depth >= 0.0 && spec.depth <= 1.0))
    input_error("needle depth ", spec.depth, " must be in [0, 1]");
  const int digits = static_cast<int>(key.size());
  const PromptTokens& vocab = spec.prompt != nullptr ? *spec.prompt : PromptTokens::bytes();
  const int min_len = passkey_min_seq_len(digits, vocab);
  if (spec.seq_len < min_len)
    input_error("sequence length ", spec.seq_len, " is too short for a passkey prompt with a ",
                digits, "-digit key (needs at least ", min_len, ")");

  const int64_t total = int64_t(spec.seq_len) + 1;
  const bool compact = 2 * vocab.full.fixed(digits) > total;
  const PromptWording& words = compact ? vocab.compact : vocab.full;
  const int64_t key_text_len = int64_t(words.intro.size() + key.size() + words.outro.size());
  const int64_t hay_len = total - words.fixed(digits);

  SampleRng rng(spec.seed);
  // Scratch reused on this thread from prompt to prompt (the training sampler calls this once
  // per sample per step; a steady-state step should not allocate).
  thread_local std::vector<int32_t> hay;
  hay.clear();
  hay.reserve(hay_len);
  if (spec.haystack != nullptr) {
    const TokenFile& file = *spec.haystack;
    check_haystack_vocab(file, vocab);
    const uint64_t begin = spec.haystack_begin;
    const uint64_t end = spec.haystack_end == 0 ? file.size() : spec.haystack_end;
    if (begin > end || end > file.size())
      input_error("haystack range [", begin, ", ", end, ") is outside ", file.path(), " (",
                  file.size(), " tokens)");
    if (end - begin < uint64_t(hay_len))
      input_error("haystack ", file.path(), " has ", end - begin,
                  " tokens to draw from, fewer than the ", hay_len, " a passkey prompt of length ",
                  spec.seq_len, " needs");
    const uint64_t start = begin + rng.below(end - begin - hay_len + 1);
    hay.resize(hay_len);
    file.read(start, hay_len, hay.data());
  } else {
    if (!vocab.byte_level)
      input_error("passkey prompts in a tokenizer's tokens (data.prompt_tokens) need a haystack of "
                  "that tokenizer's text (data.train)");
    append_filler(&rng, hay_len, &hay);
  }

  int64_t p = std::min<int64_t>(hay_len, static_cast<int64_t>(std::floor(spec.depth * hay_len)));
  // Byte-level text may cut a word; a real tokenizer's tokens are whole pieces already.
  for (int64_t q = p; vocab.byte_level && q >= std::max<int64_t>(0, p - kSnapWindow); --q) {
    if (is_boundary(hay, q)) {
      p = q;
      break;
    }
  }

  thread_local std::vector<int32_t> t;
  t.clear();
  t.reserve(total);
  t.insert(t.end(), hay.begin(), hay.begin() + p);
  append_ids(words.intro, &t);
  append_key(key, vocab, &t);
  append_ids(words.outro, &t);
  t.insert(t.end(), hay.begin() + p, hay.end());
  append_ids(words.question, &t);
  append_key(key, vocab, &t);
  RT_CHECK(int64_t(t.size()) == total, "passkey prompt has ", t.size(), " tokens, not ", total);

  PasskeyInfo info;
  info.haystack_tokens = static_cast<int>(hay_len);
  info.key_sentence = static_cast<int>(p);
  info.key_digits = static_cast<int>(p + words.intro.size());
  info.compact = compact;
  info.question = static_cast<int>(hay_len + key_text_len);
  info.answer_begin = spec.seq_len - digits;
  finish_sample(t, digits, out);
  return info;
}

// ---- recall -------------------------------------------------------------------------------

namespace {
// A pair is " abc:12" (the space keeps the key apart from a preceding filler word), the query
// "\nabc:" followed by the answer "12": finding it needs the earlier "abc:" anywhere in the
// sequence (an induction-style lookup), however far back.
constexpr int kPairTokens = 1 + kRecallKeyLetters + 1 + kRecallValueDigits;
constexpr int kQueryTokens = 1 + kRecallKeyLetters + 1 + kRecallValueDigits;
}  // namespace

int recall_min_seq_len(int pairs) { return pairs * kPairTokens + kQueryTokens - 1; }

// ---- datasets -----------------------------------------------------------------------------

namespace {

// A token file and the range of it a split draws windows from.
struct TextSource {
  TokenFile file;
  uint64_t lo = 0;
  uint64_t hi = 0;
  std::string what;  // for messages and describe(): "data.train runs/x.bin, tokens [0, 900)"
};

// Validation text when data.val is empty: the last 10% of data.train, which training windows
// never touch.
constexpr uint64_t kHeldOutDivisor = 10;

// The number of documents of `f` that start at or before token t: the document holding t is
// the one before that.
uint64_t documents_through(const TokenFile& f, uint64_t t) {
  uint64_t a = 0;
  uint64_t b = f.document_count();
  while (a < b) {
    const uint64_t mid = a + (b - a) / 2;
    if (f.document_start(mid) <= t) {
      a = mid + 1;
    } else {
      b = mid;
    }
  }
  return a;
}

// Where the held-out tail starts under packing: the document start nearest to the token cut
// n - tail, if one lies in [n - 2 tail, n - tail / 2] (validation stays 5%..20% of the file),
// so that no document is split between training and validation; else the cut itself.
uint64_t held_out_start(const TokenFile& f, uint64_t tail) {
  const uint64_t n = f.size();
  const uint64_t cut = n - tail;
  const uint64_t d = documents_through(f, cut - 1);  // the first document starting at >= cut
  uint64_t best = cut;
  uint64_t best_gap = UINT64_MAX;
  for (uint64_t c : {d, d - 1}) {
    if (c == 0 || c >= f.document_count()) continue;
    const uint64_t s = f.document_start(c);
    const uint64_t gap = s > cut ? s - cut : cut - s;
    if (s >= n - 2 * tail && s <= n - tail / 2 && gap < best_gap) {
      best = s;
      best_gap = gap;
    }
  }
  return best;
}

TextSource open_source(const Config& config, Split split, bool documents) {
  const DataConfig& d = config.data;
  TextSource s;
  const bool own_val = split == Split::kVal && !d.val.empty();
  const std::string label = own_val ? "data.val" : "data.train";
  s.file = open_token_data(own_val ? d.val : d.train, d.format, label);
  const uint64_t n = s.file.size();
  s.lo = 0;
  s.hi = n;
  std::ostringstream what;
  what << label << " " << s.file.path() << " (" << n << " tokens, vocab " << s.file.vocab_size()
       << ")";
  if (d.val.empty()) {
    const uint64_t tail = n / kHeldOutDivisor;
    const uint64_t cut = documents && tail > 0 ? held_out_start(s.file, tail) : n - tail;
    const char* at_doc = cut != n - tail ? ", split at a document start" : "";
    if (split == Split::kTrain) {
      s.hi = cut;
      what << ", first 90% [0, " << s.hi << ") (the last 10% is validation" << at_doc << ")";
    } else {
      s.lo = cut;
      what << ", held-out last 10% [" << s.lo << ", " << s.hi << ")" << at_doc;
    }
  }
  s.what = what.str();
  if (s.file.vocab_size() > static_cast<uint32_t>(config.model.vocab_size))
    input_error("vocabulary mismatch: ", label, " (", s.file.path(), ") has token ids up to ",
                s.file.vocab_size() - 1, " but model.vocab_size is ", config.model.vocab_size);
  return s;
}

class TextDataset final : public Dataset {
 public:
  TextDataset(TextSource source, uint64_t seed, Split split, int seq_len, bool packed)
      : src_(std::move(source)), seed_(seed), split_(split), seq_len_(seq_len), packed_(packed) {
    check_length(seq_len);
    if (packed_) list_starts();
  }

  void sample(uint64_t step, uint64_t index, int seq_len, Sample* out) const override {
    check_length(seq_len);
    SampleRng rng = SampleRng::for_sample(seed_, split_, step, index);
    const uint64_t n = static_cast<uint64_t>(seq_len);
    uint64_t start = 0;
    if (packed_) {
      RT_CHECK(seq_len == seq_len_, "packed text samples of length ", seq_len,
               " from a dataset whose start table was built for ", seq_len_);
      const uint64_t r = rng.below(doc_end_ - doc_begin_ + fragments_.size());
      start = r < doc_end_ - doc_begin_ ? src_.file.document_start(doc_begin_ + r)
                                        : fragments_[r - (doc_end_ - doc_begin_)];
    } else {
      start = src_.lo + rng.below(src_.hi - src_.lo - n);
    }
    std::vector<int32_t>& w = out->inputs;
    w.resize(n + 1);
    src_.file.read(start, n + 1, w.data());
    // The header's vocab_size is what the model was checked against; a token beyond it means
    // a damaged file, and would index past the embedding table.
    const uint32_t vocab = src_.file.vocab_size();
    for (uint64_t i = 0; i <= n; ++i)
      if (static_cast<uint32_t>(w[i]) >= vocab)
        input_error(src_.file.label(), ": ", src_.file.path(), " is damaged: token ", start + i,
                    " is ", static_cast<uint32_t>(w[i]), ", not below the header's vocab_size ",
                    vocab);
    out->targets.assign(w.begin() + 1, w.end());
    w.pop_back();
    out->answer.assign(n, 0);
    if (packed_) {
      mark_documents(start, n, out);
    } else {
      set_one_stream(n, out);
    }
  }

  int min_vocab() const override { return static_cast<int>(src_.file.vocab_size()); }
  std::string describe() const override {
    if (!packed_) return "text: " + src_.what;
    std::ostringstream os;
    os << "text: " << src_.what << ", packed documents (" << doc_end_ - doc_begin_
       << " document starts and " << fragments_.size() << " aligned offsets to start from)";
    return os.str();
  }

 private:
  void check_length(int seq_len) const {
    RT_CHECK(seq_len > 0, "seq_len ", seq_len);
    if (src_.hi - src_.lo < uint64_t(seq_len) + 1)
      input_error(src_.what, " holds ", src_.hi - src_.lo, " tokens, too few for windows of ",
                  "seq_len + 1 = ", seq_len + 1);
  }

  // The candidate starts: documents [doc_begin_, doc_end_) of the file start inside the range
  // with room for a whole sample after them (a contiguous run, the index being sorted; read
  // from the mapped index, not copied), and fragments_ lists the rest: seq_len-aligned offsets
  // inside documents longer than seq_len, counted from the document's start or, for the
  // document the range begins in the middle of, from the range's start.
  void list_starts() {
    const TokenFile& f = src_.file;
    const uint64_t n = static_cast<uint64_t>(seq_len_);
    const uint64_t last = src_.hi - n - 1;  // the last start with seq_len + 1 tokens in range
    doc_begin_ = src_.lo > 0 ? documents_through(f, src_.lo - 1) : 0;
    doc_end_ = documents_through(f, last);
    const uint64_t first_doc = documents_through(f, src_.lo) - 1;  // the one holding lo
    for (uint64_t d = first_doc; d < f.document_count(); ++d) {
      const uint64_t begin = std::max(f.document_start(d), src_.lo);
      if (begin > last) break;
      const uint64_t end = d + 1 < f.document_count() ? f.document_start(d + 1) : f.size();
      // A document start is a candidate already; a range start inside a document is not.
      for (uint64_t c = begin == f.document_start(d) ? begin + n : begin; c < end && c <= last;
           c += n)
        fragments_.push_back(c);
    }
    if (doc_end_ == doc_begin_ && fragments_.empty())
      input_error(src_.what, " has no document start or seq_len-aligned offset with seq_len + 1 = ",
                  seq_len_ + 1, " tokens after it");
  }

  // doc and pos of a packed sample of n tokens from `start`, and target -1 at the last token of
  // each document (the next token starts another one).
  void mark_documents(uint64_t start, uint64_t n, Sample* out) const {
    const TokenFile& f = src_.file;
    uint64_t d = documents_through(f, start);  // the next document to start
    uint64_t next = d < f.document_count() ? f.document_start(d) : f.size();
    uint64_t begin = start;  // where the current document (or fragment) began
    int32_t doc = 0;
    out->doc.resize(n);
    out->pos.resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t t = start + i;
      if (t == next) {
        ++doc;
        begin = t;
        ++d;
        next = d < f.document_count() ? f.document_start(d) : f.size();
      }
      out->doc[i] = doc;
      out->pos[i] = static_cast<int32_t>(t - begin);
      if (t + 1 == next) out->targets[i] = -1;
    }
  }

  TextSource src_;
  uint64_t seed_;
  Split split_;
  int seq_len_;
  bool packed_;
  uint64_t doc_begin_ = 0;
  uint64_t doc_end_ = 0;
  std::vector<uint64_t> fragments_;
};

void check_depths(const DataConfig& d) {
  if (!(d.passkey_min_depth >= 0.0 && d.passkey_min_depth <= 1.0))
    input_error("data.passkey_min_depth ", d.passkey_min_depth, " must be in [0, 1]");
  if (!(d.passkey_max_depth >= 0.0 && d.passkey_max_depth <= 1.0))
    input_error("data.passkey_max_depth ", d.passkey_max_depth, " must be in [0, 1]");
  if (d.passkey_min_depth > d.passkey_max_depth)
    input_error("data.passkey_min_depth ", d.passkey_min_depth,
                " is larger than data.passkey_max_depth ", d.passkey_max_depth);
}

// Every synthetic token is ASCII.
constexpr int kAsciiVocab = 128;

class PasskeyDataset final : public Dataset {
 public:
  PasskeyDataset(const Config& config, Split split, std::optional<TextSource> haystack)
      : hay_(std::move(haystack)),
        seed_(config.run.seed),
        split_(split),
        digits_(config.data.passkey_digits),
        min_depth_(config.data.passkey_min_depth),
        max_depth_(config.data.passkey_max_depth),
        packed_(config.data.packing == Packing::kDocuments),
        words_(prompt_tokens_of(config)) {
    if (digits_ < 1 || digits_ > 64)
      input_error("data.passkey_digits ", digits_, " must be in [1, 64]");
    check_depths(config.data);
    if (hay_) check_haystack_vocab(hay_->file, words_);
    if (!hay_ && !words_.byte_level)
      input_error("data.prompt_tokens ", config.data.prompt_tokens,
                  " needs data.train: the haystack must be that tokenizer's text");
    const int min_len = min_seq_len();
    if (config.train.seq_len < min_len)
      input_error("train.seq_len ", config.train.seq_len,
                  " is too short for the passkey task with ", digits_, " digits",
                  packed_ ? " packed" : "", " (needs at least ", min_len, ")");
  }

  void sample(uint64_t step, uint64_t index, int seq_len, Sample* out) const override {
    SampleRng rng = SampleRng::for_sample(seed_, split_, step, index);
    if (!packed_) {
      make_passkey(draw_spec(&rng, seq_len), out);
      return;
    }
    if (seq_len < min_seq_len())
      input_error("sequence length ", seq_len, " is too short for packed passkey prompts with ",
                  digits_, " digits (needs at least ", min_seq_len(), ")");
    // A prompt of P tokens is a document of P + 1 (see append_document).
    thread_local std::vector<int> lengths;
    draw_document_lengths(&rng, seq_len, passkey_min_seq_len(digits_, words_) + 1, &lengths);
    thread_local Sample prompt;
    thread_local std::vector<int32_t> t;
    clear_sample(out);
    for (size_t j = 0; j < lengths.size(); ++j) {
      make_passkey(draw_spec(&rng, lengths[j] - 1), &prompt);
      t.assign(prompt.inputs.begin(), prompt.inputs.end());
      t.push_back(prompt.targets.back());
      append_document(t, digits_, static_cast<int32_t>(j), out);
    }
  }

  bool has_accuracy() const override { return true; }
  int min_vocab() const override {
    const int words = words_.byte_level ? kAsciiVocab : static_cast<int>(words_.vocab_size);
    return hay_ ? std::max<int>(words, hay_->file.vocab_size()) : words;
  }
  std::string describe() const override {
    std::ostringstream os;
    os << "passkey: " << digits_ << "-digit key at depth [" << min_depth_ << ", " << max_depth_
       << "] of " << (hay_ ? hay_->what : std::string("synthetic filler"));
    if (packed_) os << ", packed: up to " << kMaxPackedPrompts << " prompts per sequence";
    return os.str();
  }

 private:
  // One prompt (a document of one more token when packed).
  int min_seq_len() const { return passkey_min_seq_len(digits_, words_) + (packed_ ? 1 : 0); }

  PasskeySpec draw_spec(SampleRng* rng, int seq_len) const {
    PasskeySpec spec;
    spec.seq_len = seq_len;
    spec.key.resize(digits_);
    for (char& c : spec.key) c = static_cast<char>('0' + rng->below(10));
    spec.depth = min_depth_ + (max_depth_ - min_depth_) * rng->uniform();
    spec.seed = rng->next();
    spec.prompt = &words_;
    if (hay_) {
      spec.haystack = &hay_->file;
      spec.haystack_begin = hay_->lo;
      spec.haystack_end = hay_->hi;
    }
    return spec;
  }

  std::optional<TextSource> hay_;
  uint64_t seed_;
  Split split_;
  int digits_;
  double min_depth_;
  double max_depth_;
  bool packed_;
  PromptTokens words_;
};

// One recall prompt of seq_len + 1 tokens into t, drawn from `rng`.
void recall_prompt(SampleRng* rng, int pairs, int seq_len, std::vector<int32_t>* t) {
  // Distinct keys (26^3 = 17576 of them, at most 4096 drawn) and their values. The vectors
  // are scratch reused on this thread (the short strings live in place): a steady-state
  // step allocates nothing here.
  thread_local std::vector<std::string> keys;
  thread_local std::vector<std::string> values;
  keys.clear();
  values.clear();
  while (int(keys.size()) < pairs) {
    std::string k(kRecallKeyLetters, 'a');
    for (char& c : k) c = static_cast<char>('a' + rng->below(26));
    if (std::find(keys.begin(), keys.end(), k) != keys.end()) continue;
    std::string v(kRecallValueDigits, '0');
    for (char& c : v) c = static_cast<char>('0' + rng->below(10));
    keys.push_back(std::move(k));
    values.push_back(std::move(v));
  }
  const int query = static_cast<int>(rng->below(pairs));

  // The pairs sit at random points of the filler, so with a long sequence the pair asked
  // for can be anywhere (and, under context parallelism, on any rank).
  const int64_t total = int64_t(seq_len) + 1;
  const int64_t filler = total - int64_t(pairs) * kPairTokens - kQueryTokens;
  thread_local std::vector<int64_t> cuts;
  cuts.resize(static_cast<size_t>(pairs));
  for (int64_t& c : cuts) c = static_cast<int64_t>(rng->below(uint64_t(filler) + 1));
  std::sort(cuts.begin(), cuts.end());

  t->clear();
  t->reserve(total);
  int64_t done = 0;
  for (int i = 0; i < pairs; ++i) {
    append_filler(rng, cuts[i] - done, t);
    done = cuts[i];
    append_text(" ", t);
    append_text(keys[i], t);
    append_text(":", t);
    append_text(values[i], t);
  }
  append_filler(rng, filler - done, t);
  append_text("\n", t);
  append_text(keys[query], t);
  append_text(":", t);
  append_text(values[query], t);
  RT_CHECK(int64_t(t->size()) == total, "recall prompt has ", t->size(), " tokens, not ", total);
}

class RecallDataset final : public Dataset {
 public:
  RecallDataset(const Config& config, Split split)
      : seed_(config.run.seed),
        split_(split),
        pairs_(config.data.recall_pairs),
        packed_(config.data.packing == Packing::kDocuments) {
    if (pairs_ < 1 || pairs_ > 4096)
      input_error("data.recall_pairs ", pairs_, " must be in [1, 4096]");
    const int min_len = min_seq_len();
    if (config.train.seq_len < min_len)
      input_error("train.seq_len ", config.train.seq_len, " is too short for the recall task with ",
                  pairs_, " pairs", packed_ ? " packed" : "", " (needs at least ", min_len, ")");
  }

  void sample(uint64_t step, uint64_t index, int seq_len, Sample* out) const override {
    const int min_len = min_seq_len();
    if (seq_len < min_len)
      input_error("sequence length ", seq_len, " is too short for the recall task with ", pairs_,
                  " pairs", packed_ ? " packed" : "", " (needs at least ", min_len, ")");
    SampleRng rng = SampleRng::for_sample(seed_, split_, step, index);
    thread_local std::vector<int32_t> t;
    if (!packed_) {
      recall_prompt(&rng, pairs_, seq_len, &t);
      finish_sample(t, kRecallValueDigits, out);
      return;
    }
    // A prompt of P tokens is a document of P + 1 (see append_document).
    thread_local std::vector<int> lengths;
    draw_document_lengths(&rng, seq_len, recall_min_seq_len(pairs_) + 1, &lengths);
    clear_sample(out);
    for (size_t j = 0; j < lengths.size(); ++j) {
      recall_prompt(&rng, pairs_, lengths[j] - 1, &t);
      append_document(t, kRecallValueDigits, static_cast<int32_t>(j), out);
    }
  }

  bool has_accuracy() const override { return true; }
  int min_vocab() const override { return kAsciiVocab; }
  std::string describe() const override {
    std::ostringstream os;
    os << "recall: " << pairs_ << " pairs (" << kRecallKeyLetters << "-letter keys, "
       << kRecallValueDigits << "-digit values) in synthetic filler";
    if (packed_) os << ", packed: up to " << kMaxPackedPrompts << " prompts per sequence";
    return os.str();
  }

 private:
  // One prompt (a document of one more token when packed).
  int min_seq_len() const { return recall_min_seq_len(pairs_) + (packed_ ? 1 : 0); }

  uint64_t seed_;
  Split split_;
  int pairs_;
  bool packed_;
};

}  // namespace

// data.loss: answer — the same samples with every target but the answer's ignored, so the
// loss (and its gradient) is the retrieval alone.
class AnswerOnlyDataset final : public Dataset {
 public:
  explicit AnswerOnlyDataset(std::unique_ptr<Dataset> inner) : inner_(std::move(inner)) {}
  void sample(uint64_t step, uint64_t index, int seq_len, Sample* out) const override {
    inner_->sample(step, index, seq_len, out);
    for (size_t i = 0; i < out->targets.size(); ++i)
      if (!out->answer[i]) out->targets[i] = -1;
  }
  bool has_accuracy() const override { return true; }
  int min_vocab() const override { return inner_->min_vocab(); }
  std::string describe() const override { return inner_->describe() + " (loss on answers only)"; }

 private:
  std::unique_ptr<Dataset> inner_;
};

std::unique_ptr<Dataset> make_dataset(const Config& config, Split split) {
  const DataConfig& d = config.data;
  std::unique_ptr<Dataset> ds;
  const bool packed = d.packing == Packing::kDocuments;
  if (d.task == Task::kText) {
    if (d.train.empty()) input_error("data.task is text but data.train names no token file");
    TextSource src = open_source(config, split, packed);
    // Said once per file: the training split and, when it has its own file, validation.
    const bool own_file = split == Split::kTrain || !d.val.empty();
    if (packed && own_file && !src.file.has_document_index() && world_rank() == 0)
      std::fprintf(stderr, "%s: %s has no document index; packing it as one document\n",
                   src.file.label().c_str(), src.file.path().c_str());
    ds = std::make_unique<TextDataset>(std::move(src), config.run.seed, split,
                                       config.train.seq_len, packed);
  } else if (d.task == Task::kPasskey) {
    std::optional<TextSource> hay;
    if (!d.train.empty()) hay = open_source(config, split, false);
    ds = std::make_unique<PasskeyDataset>(config, split, std::move(hay));
  } else if (d.task == Task::kRecall) {
    ds = std::make_unique<RecallDataset>(config, split);
  } else {
    input_error("data.task \"", d.task, "\" is not one of text, passkey, recall");
  }
  if (d.loss == LossTargets::kAnswer) {
    if (!ds->has_accuracy()) input_error("data.loss: answer needs a task with answers (passkey, recall), not ", d.task);
    ds = std::make_unique<AnswerOnlyDataset>(std::move(ds));
  }
  if (ds->min_vocab() > config.model.vocab_size)
    input_error("vocabulary mismatch: data.task ", d.task, " produces token ids up to ",
                ds->min_vocab() - 1, " but model.vocab_size is ", config.model.vocab_size);
  return ds;
}

// ---- accuracy -----------------------------------------------------------------------------

int answer_count(const Sample& sample) {
  return static_cast<int>(std::count(sample.answer.begin(), sample.answer.end(), uint8_t{1}));
}

bool exact_match(const Sample& sample, const int32_t* predictions) {
  bool any = false;
  for (size_t i = 0; i < sample.answer.size(); ++i) {
    if (!sample.answer[i]) continue;
    any = true;
    if (predictions[i] != sample.targets[i]) return false;
  }
  return any;
}

}  // namespace ringtrain
