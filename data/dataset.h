// Deterministic samplers: what each step trains on.
//
// A step's global batch holds dp x micro_batch x grad_accum samples; sample i of step s is a
// pure function of (run.seed, split, s, i). Every sample draws from its own counter-based
// random stream keyed by that tuple (SampleRng below), never from a shared stateful generator,
// so the order in which ranks, replicas or micro-steps ask for samples cannot change them, and
// every layout with the same global batch trains on the same data. Micro-step a on replica d
// takes samples [(a*dp + d)*micro_batch, ...); cp ranks slice their zigzag chunks out of the
// full sample; tp ranks ask for the same samples. The loader's position is just the step.
//
// Tasks (data.task):
//  - text: random windows of seq_len + 1 tokens of a token file (inputs = window[0..n),
//    targets = window[1..n]). Validation windows come from data.val, or, when data.val is
//    empty, from the last 10% of data.train (which training windows then never touch).
//  - passkey: a key of data.passkey_digits digits hidden in filler at a depth drawn from
//    [data.passkey_min_depth, data.passkey_max_depth], asked for at the end (make_passkey).
//    The filler is synthetic pseudo-English, or, when data.train names a byte-level token
//    file, windows of that real text (data.val or the last 10% for validation).
//  - recall: associative recall; data.recall_pairs " key:value" pairs spread through filler,
//    then a query key whose value is the answer (see RecallDataset in dataset.cpp).
// The synthetic tasks are byte-level text (ASCII), generated on the fly.
//
// data.packing: documents (Sample::doc and Sample::pos tell the model where documents start;
// with packing none a sample is one stream: doc all 0, pos 0..seq_len-1):
//  - text: a sample is seq_len + 1 consecutive tokens from a candidate start: a document start
//    of the token file's index, or a seq_len-aligned offset inside a document longer than
//    seq_len (offsets start, start + seq_len, ... of the document). The candidates are listed
//    once at load; the sample's SampleRng picks one uniformly. The sample runs on through
//    whole documents and cuts the last where it ends. pos restarts at 0 at each document start
//    and at the sample's start (a fragment); the last token of each document has target -1,
//    so the loss never predicts the next document's first token. A file without an index is
//    one document (a notice says so). When data.val is empty the held-out tail starts at the
//    document start nearest to the last 10% if one lies within 5%..20% of the end, so that
//    training and validation share no document; else the one document there is split.
//  - passkey, recall: a sample is 2..kMaxPackedPrompts complete prompts (fewer when seq_len
//    cannot hold them), each its own document of a drawn length (at least the task's shortest
//    prompt plus one token), filling seq_len exactly; every prompt's answer positions are
//    marked, and its last token (the answer's last digit, an input here) has target -1.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/prompt_tokens.h"
#include "src/config/config.h"

namespace ringtrain {

class TokenFile;

enum class Split { kTrain, kVal };

struct Sample {
  std::vector<int32_t> inputs;   // [seq_len] token ids
  std::vector<int32_t> targets;  // [seq_len] next tokens; -1 = ignored by the loss
  std::vector<uint8_t> answer;   // [seq_len] 1 where targets[i] is an answer token, scored for
                                 // exact-match accuracy (synthetic tasks); all 0 for text
  std::vector<int32_t> doc;      // [seq_len] document of each token: 0, 1, ... in sequence
                                 // order (all 0 when the sample is one stream)
  std::vector<int32_t> pos;      // [seq_len] position inside its document or fragment (RoPE's
                                 // position): restarts at 0 where doc changes; 0..seq_len-1
                                 // when the sample is one stream
};

class Dataset {
 public:
  virtual ~Dataset();
  // Fills `out` with sample `index` of step `step` (seq_len tokens). Pure: the same arguments
  // give the same sample on any rank, in any order, any number of times. Thread-safe.
  virtual void sample(uint64_t step, uint64_t index, int seq_len, Sample* out) const = 0;
  // True for tasks with answer positions (exact-match accuracy is meaningful).
  virtual bool has_accuracy() const { return false; }
  // The smallest model.vocab_size that can embed every token this dataset produces.
  virtual int min_vocab() const = 0;
  // One line for the start-up banner ("text: data/corpus/train.bin, 4.2M tokens, ...").
  virtual std::string describe() const = 0;
};

// The dataset of config.data for one split. Input errors (before training starts): unknown
// task, missing or bad token files, a vocabulary larger than model.vocab_size ("vocabulary
// mismatch"), too little text for train.seq_len, a seq_len too short for the task.
std::unique_ptr<Dataset> make_dataset(const Config& config, Split split);

// ---- counter-based randomness -------------------------------------------------------------

// SplitMix64's finalizer: a bijective 64-bit mix with full avalanche.
uint64_t mix64(uint64_t x);

// A random stream keyed by a tuple: draw k is mix64(key + (k + 1) * golden ratio), i.e.
// SplitMix64 started at the key. Two samples never share state; a sample's stream is fixed by
// its key alone.
class SampleRng {
 public:
  explicit SampleRng(uint64_t key) : state_(key) {}
  // The key of (seed, split, step, index); each stage is a bijection of the previous one, so
  // tuples that differ in any field give different keys.
  static SampleRng for_sample(uint64_t seed, Split split, uint64_t step, uint64_t index);

  uint64_t next();
  // Uniform in [0, n) (n > 0); multiply-shift, bias below 2^-40 for the sizes used here.
  uint64_t below(uint64_t n);
  // Uniform in [0, 1).
  double uniform();

 private:
  uint64_t state_;
};

// ---- synthetic tasks ----------------------------------------------------------------------

// The most prompts a packed synthetic sample holds: enough to train retrieval under the
// document mask on a mix of prompt lengths, few enough that each prompt stays long-range.
inline constexpr int kMaxPackedPrompts = 8;

// Appends exactly `n` tokens of pseudo-English filler (sentences of common words, byte-level)
// drawn from `rng`.
void append_filler(SampleRng* rng, int64_t n, std::vector<int32_t>* out);

// One passkey prompt with everything explicit (the training sampler and the needle sweep of
// `ringtrain eval --needle` both build theirs here). The token stream is
//   haystack[0..p) "The pass key is KEY. Remember it. " haystack[p..H)
//   "\nWhat is the pass key? The pass key is KEY"
// of exactly seq_len + 1 tokens (the haystack length H makes up the rest); inputs are its
// first seq_len tokens, targets its last seq_len (every position scored), and answer marks the
// key.size() last positions, whose targets are the final key's digits. When those sentences
// would fill more than half of the prompt (seq_len below about 160 for 5 digits, e.g. tests at
// seq_len 64) the compact wording "key KEY. " ... "\nkey? KEY" is used instead, so that short
// prompts still have a haystack to hide the key in.
// Exact match on the answer positions under teacher forcing equals greedy decoding of the key:
// a greedy decode that goes wrong does so at its first wrong digit, which teacher forcing sees
// too.
struct PasskeySpec {
  int seq_len = 0;
  std::string key;     // the digits to hide, e.g. "48213"
  double depth = 0.5;  // in [0, 1]: p = depth * H, moved back to the start of a word
  uint64_t seed = 0;   // draws the synthetic filler, or the haystack window
  // Real text (byte-level token file; vocab_size <= 256) for the haystack; nullptr: synthetic
  // filler. Windows are drawn from tokens [haystack_begin, haystack_end) (end 0: to the end).
  const TokenFile* haystack = nullptr;
  uint64_t haystack_begin = 0;
  uint64_t haystack_end = 0;
  // The fixed words and digits as tokens (data/prompt_tokens.h); nullptr: byte-level. With a
  // real tokenizer the haystack must be its text and the key sentence starts at any token.
  const PromptTokens* prompt = nullptr;
};

// Where the parts of a passkey prompt landed, as positions in Sample::inputs.
struct PasskeyInfo {
  int haystack_tokens = 0;  // H
  int key_sentence = 0;     // first token of "The pass key is ..." (or "key ...")
  int key_digits = 0;       // first digit of the hidden key
  int question = 0;         // the "\n" before "What is the pass key?"
  int answer_begin = 0;     // first answer position (answer[i] == 1 for i >= answer_begin)
  bool compact = false;     // the compact wording "key KEY. " ... "\nkey? KEY"
};

// Builds the prompt into `out`; input errors for a key that is not all digits, a depth outside
// [0, 1], a seq_len too short for the two sentences, or a haystack too short or not byte-level.
PasskeyInfo make_passkey(const PasskeySpec& spec, Sample* out);

// The shortest seq_len a passkey prompt with a key of `digits` digits fits in (compact wording,
// no haystack).
int passkey_min_seq_len(int digits, const PromptTokens& words = PromptTokens::bytes());

// Input error unless `file` can be a haystack for prompts in `words`: byte-level text for the
// byte-level words, else a vocabulary equal to the words' tokenizer's.
void check_haystack_vocab(const TokenFile& file, const PromptTokens& words);

// data.train or data.val (`path`) in data.format: a token file or a Megatron pair PREFIX.bin +
// PREFIX.idx; `label` names it in messages.
TokenFile open_token_data(const std::string& path, DataFormat format, const std::string& label);

// The prompt words of config.data: data.prompt_tokens loaded, or the byte-level ones.
PromptTokens prompt_tokens_of(const Config& config);

// Associative recall: keys are kRecallKeyLetters lowercase letters (all distinct within a
// sample), values kRecallValueDigits digits.
inline constexpr int kRecallKeyLetters = 3;
inline constexpr int kRecallValueDigits = 2;
int recall_min_seq_len(int pairs);

// ---- accuracy -----------------------------------------------------------------------------

// Number of answer positions of `sample`.
int answer_count(const Sample& sample);
// Exact match: every answer position's prediction (argmax token, predictions[0..seq_len))
// equals its target. False for a sample without answer positions.
bool exact_match(const Sample& sample, const int32_t* predictions);
inline bool exact_match(const Sample& sample, const std::vector<int32_t>& predictions) {
  return predictions.size() == sample.targets.size() && exact_match(sample, predictions.data());
}

}  // namespace ringtrain
