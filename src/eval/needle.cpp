#include "src/eval/needle.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "data/dataset.h"
#include "data/token_file.h"
#include "parallel/mesh.h"
#include "parallel/zigzag.h"
#include "src/checkpoint/checkpoint.h"
#include "src/checkpoint/checkpoint_files.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "src/model/llama.h"
#include "src/train/compute.h"

namespace ringtrain {
namespace {

// Salt of the sweep's random streams, so that its prompts never coincide with training's.
constexpr uint64_t kNeedleSalt = 0x6e6565646c65ULL;  // "needle"
// Held-out share of data.train when data.val is empty (as the passkey dataset does).
constexpr uint64_t kHeldOutDivisor = 10;
// The prompts' words and digits are ASCII.
constexpr int kAsciiVocab = 128;

struct Haystack {
  std::optional<TokenFile> file;
  uint64_t begin = 0, end = 0;
  std::string what = "synthetic filler";
};

Haystack open_haystack(const Config& config, const NeedleOptions& opt) {
  Haystack h;
  std::string path;
  bool held_out = false;
  DataFormat format = DataFormat::kRingtrain;  // --haystack and the corpus: token files
  if (!opt.haystack.empty()) {
    path = opt.haystack;
  } else if (config.data.task == Task::kPasskey && !config.data.val.empty()) {
    path = config.data.val;
    format = config.data.format;
  } else if (config.data.task == Task::kPasskey && !config.data.train.empty()) {
    path = config.data.train;
    format = config.data.format;
    held_out = true;
  } else {
    for (const char* p : {"data/corpus/train.val.bin", "data/corpus/train.bin"})
      if (std::filesystem::exists(p)) {
        path = p;
        break;
      }
  }
  if (path.empty()) return h;
  h.file = open_token_data(path, format, "needle haystack");
  const uint64_t n = h.file->size();
  h.begin = held_out ? n - n / kHeldOutDivisor : 0;
  h.end = n;
  RT_INPUT_CHECK(h.file->vocab_size() <= static_cast<uint32_t>(config.model.vocab_size), "needle haystack ",
                 path, " has vocab ", h.file->vocab_size(), ", more than model.vocab_size ",
                 config.model.vocab_size);
  std::ostringstream os;
  os << path << " tokens [" << h.begin << ", " << h.end << ")";
  h.what = os.str();
  return h;
}

// The checkpoint's trained context: train.seq_len of the config stored in it (rank 0 reads,
// every rank gets it). Falls back to the current config's when the file has none.
int trained_seq_len(const std::string& path, const Config& config, Mesh& mesh) {
  int32_t len = config.train.seq_len;
  if (mesh.rank() == 0) {
    try {
      const YAML::Node root = YAML::Load(read_checkpoint_header(path).config_yaml);
      if (root["train"] && root["train"]["seq_len"]) len = root["train"]["seq_len"].as<int32_t>();
    } catch (const YAML::Exception&) {
      warn("needle: cannot read train.seq_len from " + path + "'s config; assuming " + std::to_string(len));
    }
  }
  mesh.world().broadcast(&len, 1, DType::kI32, 0);
  return len;
}

uint64_t fnv1a(uint64_t h, int32_t v) {
  for (int i = 0; i < 4; ++i) {
    h ^= static_cast<uint64_t>((static_cast<uint32_t>(v) >> (8 * i)) & 0xff);
    h *= 1099511628211ULL;
  }
  return h;
}

std::string fmt_double(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

std::string hex64(uint64_t x) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

}  // namespace

void check_needle_options(const NeedleOptions& opt, int cp, int digits) {
  const int min_len = passkey_min_seq_len(digits);
  for (int64_t len : opt.lengths) {
    RT_INPUT_CHECK(len > 0 && len % (2 * cp) == 0, "--lengths: ", len,
                   " is not a positive multiple of 2 * parallel.cp = ", 2 * cp,
                   " (the zigzag layout cuts a sequence into 2 * cp equal chunks)");
    RT_INPUT_CHECK(len >= min_len, "--lengths: ", len, " is too short for a ", digits,
                   "-digit passkey prompt (needs at least ", min_len, ")");
  }
  for (double d : opt.depths)
    RT_INPUT_CHECK(d >= 0.0 && d <= 1.0, "--depths: ", d, " is outside [0, 1]");
  RT_INPUT_CHECK(opt.samples >= 0, "--samples: ", opt.samples, " must be positive");
}

std::vector<int64_t> default_needle_lengths(int64_t trained_len, int cp, int digits) {
  std::vector<int64_t> out;
  const int64_t step = 2 * cp;
  const int64_t min_len = std::max<int64_t>(passkey_min_seq_len(digits), step);
  for (int64_t div : {4, 2, 1}) {
    const int64_t len = trained_len / div / step * step;
    if (len >= min_len && (out.empty() || out.back() != len)) out.push_back(len);
  }
  if (out.empty()) out.push_back((std::max(trained_len, min_len) + step - 1) / step * step);
  return out;
}

std::vector<NeedleCell> run_needle_sweep(const Config& config, Mesh& mesh, const NeedleOptions& opt_in) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const int cp = mesh.shape().cp;
  const int cp_rank = mesh.coord().cp;
  const int digits = config.data.passkey_digits;
  // Checks that every rank makes identically: errors here end the job with exit 2.
  struct Prepared {
    NeedleOptions opt;
    std::string path;
    int trained = 0;
    Haystack hay;
    PromptTokens words;
  };
  Prepared prep = collectively([&] {
    RT_INPUT_CHECK(digits >= 1 && digits <= 64, "data.passkey_digits ", digits, " must be in [1, 64]");
    Prepared p;
    p.words = prompt_tokens_of(config);
    const int words_vocab = p.words.byte_level ? kAsciiVocab : static_cast<int>(p.words.vocab_size);
    RT_INPUT_CHECK(config.model.vocab_size >= words_vocab, "eval --needle: the prompts' tokens need model.vocab_size >= ",
                   words_vocab, " (it is ", config.model.vocab_size, ")");
    NeedleOptions& opt = p.opt;
    opt = opt_in;
    check_needle_options(opt, cp, digits);
    if (opt.depths.empty())
      for (int i = 0; i <= 10; ++i) opt.depths.push_back(i / 10.0);
    if (opt.samples == 0) opt.samples = kNeedleDefaultSamples;
    std::string spec = opt.checkpoint;
    if (spec.empty()) {
      RT_INPUT_CHECK(!config.checkpoint.dir.empty(),
                     "eval --needle needs a trained model: give --checkpoint P or set checkpoint.dir");
      spec = config.checkpoint.dir;
    }
    p.path = resolve_checkpoint(spec, mesh);
    const std::string& path = p.path;
    p.trained = trained_seq_len(path, config, mesh);
    const int trained = p.trained;
    if (opt.lengths.empty()) opt.lengths = default_needle_lengths(trained, cp, digits);
    p.hay = open_haystack(config, opt);
    if (p.hay.file) check_haystack_vocab(*p.hay.file, p.words);
    RT_INPUT_CHECK(p.hay.file || p.words.byte_level, "eval --needle: data.prompt_tokens needs a haystack of its ",
                   "tokenizer's text (data.val, data.train or --haystack)");
    return p;
  });
  const NeedleOptions& opt = prep.opt;
  const std::string& path = prep.path;
  const int trained = prep.trained;
  const Haystack& hay = prep.hay;

  std::string out_path;
  if (mesh.rank() == 0) {
    std::filesystem::create_directories(config.run.out_dir);
    out_path = config.run.out_dir + "/needle.jsonl";
    std::ofstream(out_path, std::ios::trunc);
    for (int64_t len : opt.lengths)
      if (len > trained)
        warn("needle: length " + std::to_string(len) + " is beyond the model's trained context (train.seq_len " +
             std::to_string(trained) + " of " + path + "); its cells measure extrapolation");
    std::printf("needle: checkpoint %s, haystack %s, %zu lengths x %zu depths x %d samples, cp %d (%s), "
                "cross-rank attention %s\n",
                path.c_str(), hay.what.c_str(), opt.lengths.size(), opt.depths.size(), opt.samples, cp,
                to_string(config.parallel.cp_mode).c_str(), opt.cross_rank ? "on" : "off");
    std::fflush(stdout);
  }

  const int batch_max = std::max(1, std::min(opt.samples, config.train.micro_batch));
  std::vector<NeedleCell> cells;
  double acc_sum = 0.0, acc_min = 1.0;
  // One model and one checkpoint read for every length: each batch carries its length, and
  // the model lays the sequence out over the cp ranks from it.
  Config model_config = config;
  model_config.parallel.zero = ZeroLevel::k0;  // no optimizer here to gather ZeRO-3's weights; any layout loads
  Compute compute(model_config, mesh);
  LlamaModel model(model_config, mesh, compute.backend(), compute.groups());
  model.init_weights(config.run.seed);
  read_checkpoint_file(path, model_config, mesh, model.params(), nullptr);
  model.set_cross_rank(opt.cross_rank);
  for (int64_t len64 : opt.lengths) {
    const int len = static_cast<int>(len64);
    const Zigzag zz{len, cp};
    const int sl = zz.local_len();
    for (double depth : opt.depths) {
      NeedleCell cell{len64, depth, 0.0, opt.samples, 0, 14695981039346656037ULL};
      int correct = 0;
      for (int first = 0; first < opt.samples; first += batch_max) {
        const int b = std::min(batch_max, opt.samples - first);
        LocalBatch batch;
        batch.b = b;
        batch.s_local = sl;
        batch.seq_len = len;
        batch.ids.resize(static_cast<size_t>(b) * sl);
        batch.targets.resize(batch.ids.size());
        batch.answer.resize(batch.ids.size());
        std::vector<int> answer_begin(static_cast<size_t>(b));
        Sample s;
        for (int j = 0; j < b; ++j) {
          // Key and haystack window depend on (seed, length, sample) only, not on the depth.
          SampleRng rng = SampleRng::for_sample(config.run.seed ^ kNeedleSalt, Split::kVal,
                                                static_cast<uint64_t>(len), static_cast<uint64_t>(first + j));
          PasskeySpec ps;
          ps.seq_len = len;
          ps.key.resize(static_cast<size_t>(digits));
          for (char& c : ps.key) c = static_cast<char>('0' + rng.below(10));
          ps.depth = depth;
          ps.seed = rng.next();
          ps.prompt = &prep.words;
          if (hay.file) {
            ps.haystack = &*hay.file;
            ps.haystack_begin = hay.begin;
            ps.haystack_end = hay.end;
          }
          const PasskeyInfo info = make_passkey(ps, &s);
          answer_begin[static_cast<size_t>(j)] = info.answer_begin;
          const int q = zz.owner(len - 1);
          bool local = true;
          for (int k = 0; k < digits; ++k) local = local && zz.owner(info.key_digits + k) == q;
          cell.on_answer_rank += local;
          const size_t at = static_cast<size_t>(j) * sl;
          zz.shard(cp_rank, s.inputs.data(), batch.ids.data() + at);
          zz.shard(cp_rank, s.targets.data(), batch.targets.data() + at);
          zz.shard(cp_rank, s.answer.data(), batch.answer.data() + at);
        }
        std::vector<float> row_loss;
        std::vector<int32_t> argmax;
        model.forward_eval(batch, &row_loss, &argmax);
        // Greedy answer digits by (sample, digit); each position is held by one cp rank.
        std::vector<double> pred(static_cast<size_t>(b) * digits, 0.0), wrong(static_cast<size_t>(b), 0.0);
        for (int j = 0; j < b; ++j)
          for (int t = 0; t < sl; ++t) {
            const size_t i = static_cast<size_t>(j) * sl + t;
            if (!batch.answer[i]) continue;
            const int k = zz.position(cp_rank, t) - answer_begin[static_cast<size_t>(j)];
            RT_CHECK(k >= 0 && k < digits, "answer position ", k);
            pred[static_cast<size_t>(j) * digits + k] = argmax[i];
            wrong[static_cast<size_t>(j)] += argmax[i] != batch.targets[i];
          }
        mesh.cp().all_reduce(pred.data(), pred.size(), DType::kF64, ReduceOp::kSum);
        mesh.cp().all_reduce(wrong.data(), wrong.size(), DType::kF64, ReduceOp::kSum);
        for (int j = 0; j < b; ++j) correct += wrong[static_cast<size_t>(j)] == 0;
        for (double p : pred) cell.answers = fnv1a(cell.answers, static_cast<int32_t>(p));
      }
      cell.accuracy = static_cast<double>(correct) / opt.samples;
      acc_sum += cell.accuracy;
      acc_min = std::min(acc_min, cell.accuracy);
      cells.push_back(cell);
      std::string line = "{\"length\": " + std::to_string(len64) + ", \"depth\": " + fmt_double(depth) +
                         ", \"accuracy\": " + fmt_double(cell.accuracy) +
                         ", \"samples\": " + std::to_string(cell.samples) +
                         ", \"cross_rank\": " + (opt.cross_rank ? "true" : "false") + ", \"cp\": " + std::to_string(cp) +
                         ", \"needle_on_answer_rank\": " + std::to_string(cell.on_answer_rank) +
                         ", \"answers\": \"" + hex64(cell.answers) + "\"}";
      if (mesh.rank() == 0) {
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        std::ofstream(out_path, std::ios::app) << line << '\n';
      }
    }
  }
  const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
  if (mesh.rank() == 0) {
    std::string lens, deps;
    for (int64_t l : opt.lengths) lens += (lens.empty() ? "" : ", ") + std::to_string(l);
    for (double d : opt.depths) deps += (deps.empty() ? "" : ", ") + fmt_double(d);
    const std::string line =
        "{\"summary\": \"needle\", \"cells\": " + std::to_string(cells.size()) +
        ", \"mean_accuracy\": " + fmt_double(cells.empty() ? 0.0 : acc_sum / static_cast<double>(cells.size())) +
        ", \"min_accuracy\": " + fmt_double(cells.empty() ? 0.0 : acc_min) + ", \"lengths\": [" + lens +
        "], \"depths\": [" + deps + "], \"samples\": " + std::to_string(opt.samples) +
        ", \"cross_rank\": " + (opt.cross_rank ? "true" : "false") + ", \"cp\": " + std::to_string(cp) +
        ", \"cp_mode\": \"" + to_string(config.parallel.cp_mode) + "\", \"trained_seq_len\": " + std::to_string(trained) +
        ", \"seconds\": " + fmt_double(seconds) + "}";
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    std::ofstream(out_path, std::ios::app) << line << '\n';
  }
  return cells;
}

}  // namespace ringtrain
