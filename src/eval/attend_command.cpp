#include "src/eval/attend_command.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <optional>

#include "data/dataset.h"
#include "data/token_file.h"
#include "data/tokenizer.h"
#include "kernels/attention_probs.h"
#include "parallel/mesh.h"
#include "src/checkpoint/checkpoint_files.h"
#include "src/checkpoint/h5_util.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "src/eval/attend.h"

namespace ringtrain {
namespace {

// Salt of the needle prompt's random stream (key digits, haystack window).
constexpr uint64_t kAttendSalt = 0x617474656e64ULL;  // "attend"
// The largest number of documents that get a key span each.
constexpr size_t kMaxDocumentSpans = 16;
constexpr int kDefaultPoolBlocks = 64;
constexpr size_t kTopRetrievalHeads = 5;

struct Prompt {
  std::vector<int32_t> tokens, docs;
  std::vector<KeySpan> spans;
  std::vector<int32_t> answer_rows, copied_keys;  // --needle: row i copies key copied_keys[i]
  int needle_span = -1;                           // index in spans
  std::string what;
};

Prompt make_prompt(const Config& config, const AttendOptions& opt) {
  const int sources = !opt.text.empty() + !opt.text_file.empty() + opt.needle + (!opt.data.empty() && !opt.needle);
  RT_INPUT_CHECK(sources == 1, "attend: give exactly one prompt: --text, --text-file, --data TOKENS --sample I, or "
                               "--needle (", sources, " given)");
  Prompt p;
  if (!opt.text.empty() || !opt.text_file.empty()) {
    std::string text = opt.text;
    if (!opt.text_file.empty()) {
      std::ifstream f(opt.text_file, std::ios::binary);
      RT_INPUT_CHECK(f.good(), "--text-file: cannot read ", opt.text_file);
      text.assign(std::istreambuf_iterator<char>(f), {});
    }
    ByteTokenizer::encode_append(text, &p.tokens);
    p.what = opt.text_file.empty() ? "--text" : opt.text_file;
  } else if (!opt.needle) {
    RT_INPUT_CHECK(opt.sample >= 0, "attend --data: give the window with --sample I");
    const TokenFile file = TokenFile::open(opt.data, "attend --data");
    const uint64_t len = static_cast<uint64_t>(config.train.seq_len), start = static_cast<uint64_t>(opt.sample) * len;
    RT_INPUT_CHECK(start + len <= file.size(), "--sample ", opt.sample, ": ", opt.data, " holds ", file.size(),
                   " tokens, ", file.size() / len, " windows of train.seq_len ", len);
    p.tokens.resize(len);
    file.read(start, len, p.tokens.data());
    if (config.data.packing == Packing::kDocuments && file.has_document_index()) {
      p.docs.assign(len, 0);
      for (uint64_t d = 0, n = file.document_count(); d < n; ++d) {
        const uint64_t s = file.document_start(d);
        if (s > start && s < start + len)
          for (uint64_t t = s - start; t < len; ++t) ++p.docs[t];
      }
    }
    p.what = opt.data + " window " + std::to_string(opt.sample);
  } else {
    const int digits = config.data.passkey_digits;
    const int len = opt.length > 0 ? static_cast<int>(std::min<int64_t>(opt.length, 1 << 30)) : config.train.seq_len;
    RT_INPUT_CHECK(len >= passkey_min_seq_len(digits), "--length ", len, " is too short for a ", digits,
                   "-digit passkey prompt (needs at least ", passkey_min_seq_len(digits), ")");
    SampleRng rng = SampleRng::for_sample(config.run.seed ^ kAttendSalt, Split::kVal, static_cast<uint64_t>(len), 0);
    PasskeySpec ps;
    ps.seq_len = len;
    ps.key.resize(static_cast<size_t>(digits));
    for (char& c : ps.key) c = static_cast<char>('0' + rng.below(10));
    ps.depth = opt.depth;
    ps.seed = rng.next();
    const PromptTokens words = prompt_tokens_of(config);
    ps.prompt = &words;
    std::optional<TokenFile> hay;
    if (!opt.data.empty()) {
      hay = TokenFile::open(opt.data, "attend --needle haystack");
      ps.haystack = &*hay;
    }
    Sample s;
    const PasskeyInfo info = make_passkey(ps, &s);
    p.tokens = s.inputs;
    for (int i = 0; i < len; ++i)
      if (s.answer[static_cast<size_t>(i)]) {
        p.answer_rows.push_back(i);
        p.copied_keys.push_back(info.key_digits + (i - info.answer_begin));
      }
    p.needle_span = 1;
    p.what = "needle: key " + ps.key + " at depth " + std::to_string(opt.depth) + ", digits at " +
             std::to_string(info.key_digits);
    p.spans.push_back({"sink", 0, 1});
    p.spans.push_back({"needle", info.key_digits, info.key_digits + digits});
    return p;
  }
  p.spans.push_back({"sink", 0, 1});
  if (!p.docs.empty() && static_cast<size_t>(p.docs.back()) < kMaxDocumentSpans)
    for (int32_t d = 0, lo = 0; d <= p.docs.back(); ++d) {
      int32_t hi = lo;
      while (hi < static_cast<int32_t>(p.docs.size()) && p.docs[static_cast<size_t>(hi)] == d) ++hi;
      p.spans.push_back({"document " + std::to_string(d), lo, hi});
      lo = hi;
    }
  return p;
}

std::vector<int32_t> resolve_rows(const AttendOptions& opt, const Prompt& p) {
  std::vector<int32_t> rows;
  const std::vector<std::string> spec = opt.rows.empty() ? std::vector<std::string>{"last"} : opt.rows;
  for (const std::string& r : spec) {
    if (r == "last") {
      rows.push_back(static_cast<int32_t>(p.tokens.size()) - 1);
    } else if (r == "needle") {
      RT_INPUT_CHECK(!p.answer_rows.empty(), "--rows needle: only with --needle (the rows that answer the passkey)");
      rows.insert(rows.end(), p.answer_rows.begin(), p.answer_rows.end());
    } else {
      const long long v = std::stoll(r);
      RT_INPUT_CHECK(v < static_cast<long long>(p.tokens.size()), "--rows: row ", v,
                     " is out of range (the prompt has ", p.tokens.size(), " tokens: 0..", p.tokens.size() - 1, ")");
      rows.push_back(static_cast<int32_t>(v));
    }
  }
  std::vector<int32_t> unique;
  for (int32_t r : rows)
    if (std::find(unique.begin(), unique.end(), r) == unique.end()) unique.push_back(r);
  return unique;
}

// ---- HDF5 output ----

void write_dataset(hid_t loc, const char* name, hid_t type, const void* data, const std::vector<hsize_t>& dims) {
  h5::Handle space(H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
  h5::Handle ds(H5_CHECK(H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
  H5_CHECK(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
}

void put_attr_int(hid_t obj, const char* name, int64_t v) {
  h5::Handle space(H5_CHECK(H5Screate(H5S_SCALAR)));
  h5::Handle a(H5_CHECK(H5Acreate2(obj, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT)));
  H5_CHECK(H5Awrite(a, H5T_NATIVE_INT64, &v));
}

struct RetrievalHead {
  int layer, head;
  double score, needle_mass;
};

void write_h5(const std::string& path, const AttendResult& r, const AttendRequest& req, const Prompt& p,
              const std::vector<int>& heads, const std::vector<RetrievalHead>& retrieval, const std::string& ckpt) {
  h5::quiet();
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const hid_t fid = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  RT_INPUT_CHECK(fid >= 0, "--out: cannot create ", path, ": ", h5::error_stack());
  h5::Handle file(fid);
  const hsize_t L = static_cast<hsize_t>(r.length), R = req.rows.size(), P = static_cast<hsize_t>(r.n_pool),
                W = static_cast<hsize_t>(r.width), S = req.spans.size();
  std::vector<int32_t> positions(L);
  std::iota(positions.begin(), positions.end(), 0);
  write_dataset(file, "tokens", H5T_NATIVE_INT32, req.tokens.data(), {L});
  write_dataset(file, "positions", H5T_NATIVE_INT32, positions.data(), {L});
  if (!req.docs.empty()) write_dataset(file, "documents", H5T_NATIVE_INT32, req.docs.data(), {L});
  if (R > 0) write_dataset(file, "row_positions", H5T_NATIVE_INT32, req.rows.data(), {R});
  h5::put_attr_str(file, "layout", r.layout);
  h5::put_attr_str(file, "checkpoint", ckpt);
  h5::put_attr_str(file, "prompt", p.what);
  std::string names;
  for (const KeySpan& s : req.spans) names += (names.empty() ? "" : ",") + s.name;
  h5::put_attr_str(file, "span_names", names);
  put_attr_int(file, "pool", req.pool);
  put_attr_int(file, "length", r.length);
  std::vector<int32_t> span_bounds;
  for (const KeySpan& s : req.spans) {
    span_bounds.push_back(s.lo);
    span_bounds.push_back(s.hi);
  }
  if (S > 0) write_dataset(file, "span_bounds", H5T_NATIVE_INT32, span_bounds.data(), {S, 2});
  const size_t H = static_cast<size_t>(r.heads);
  std::vector<float> entropy(L), distance(L), mass(S * L);
  for (size_t li = 0; li < r.layers.size(); ++li) {
    char gname[32];
    std::snprintf(gname, sizeof gname, "layer_%02d", r.layers[li]);
    h5::Handle lg(H5_CHECK(H5Gcreate2(file, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    for (int h : heads) {
      char hname[32];
      std::snprintf(hname, sizeof hname, "head_%02d", h);
      h5::Handle hg(H5_CHECK(H5Gcreate2(lg, hname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
      h5::put_attr_str(hg, "layout", r.layout);
      put_attr_int(hg, "layer", r.layers[li]);
      put_attr_int(hg, "head", h);
      const size_t item = li * H + static_cast<size_t>(h);
      if (R > 0) write_dataset(hg, "rows", H5T_NATIVE_FLOAT, &r.rows[item * R * L], {R, L});
      if (P > 0) write_dataset(hg, "pooled", H5T_NATIVE_FLOAT, &r.pooled[item * P * P], {P, P});
      const float* st = &r.stats[item * L * W];
      for (size_t i = 0; i < L; ++i) {
        entropy[i] = st[i * W];
        distance[i] = st[i * W + 1];
        for (size_t m = 0; m < S; ++m) mass[m * L + i] = st[i * W + kProbStats + m];
      }
      write_dataset(hg, "entropy", H5T_NATIVE_FLOAT, entropy.data(), {L});
      write_dataset(hg, "mean_distance", H5T_NATIVE_FLOAT, distance.data(), {L});
      if (S > 0) write_dataset(hg, "span_mass", H5T_NATIVE_FLOAT, mass.data(), {S, L});
    }
  }
  if (!retrieval.empty()) {
    h5::Handle g(H5_CHECK(H5Gcreate2(file, "retrieval", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)));
    std::vector<int32_t> layer, head;
    std::vector<double> score, needle;
    for (const RetrievalHead& x : retrieval) {
      layer.push_back(x.layer);
      head.push_back(x.head);
      score.push_back(x.score);
      needle.push_back(x.needle_mass);
    }
    const hsize_t n = retrieval.size();
    write_dataset(g, "layer", H5T_NATIVE_INT32, layer.data(), {n});
    write_dataset(g, "head", H5T_NATIVE_INT32, head.data(), {n});
    write_dataset(g, "score", H5T_NATIVE_DOUBLE, score.data(), {n});
    write_dataset(g, "needle_mass", H5T_NATIVE_DOUBLE, needle.data(), {n});
  }
}

std::string fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

// The default pool: the smallest divisor of `length` giving at most kDefaultPoolBlocks blocks
// per side.
int default_pool(int length) {
  for (int b = std::max(1, length / kDefaultPoolBlocks); b <= length; ++b)
    if (length % b == 0) return b;
  return length;
}

}  // namespace

void run_attend_command(const Config& config, Mesh& mesh, const AttendOptions& opt) {
  // Every check below is made identically on every rank: its input errors are collective.
  struct Prepared {
    Prompt prompt;
    AttendRequest req;
    std::string out;
  };
  Prepared prep = collectively([&] {
    Prepared p;
    const Prompt& prompt = p.prompt = make_prompt(config, opt);
    AttendRequest& req = p.req;
    req.tokens = prompt.tokens;
    req.docs = prompt.docs;
    req.layers = opt.layers;
    req.rows = resolve_rows(opt, prompt);
    req.pool = opt.pool > 0 ? opt.pool : default_pool(static_cast<int>(prompt.tokens.size()));
    req.spans = prompt.spans;
    for (const auto& [lo, hi] : opt.spans) {
      RT_INPUT_CHECK(hi <= static_cast<int64_t>(prompt.tokens.size()), "--spans: ", lo, ":", hi,
                     " is not inside the prompt of ", prompt.tokens.size(), " tokens");
      req.spans.push_back({std::to_string(lo) + ":" + std::to_string(hi), static_cast<int32_t>(lo),
                           static_cast<int32_t>(hi)});
    }
    req.cross_rank = opt.cross_rank;
    check_attend_request(config, req);
    for (int h : opt.heads)
      RT_INPUT_CHECK(h >= 0 && h < config.model.n_heads, "--heads: head ", h, " is out of range (the model has ",
                     config.model.n_heads, " heads: 0..", config.model.n_heads - 1, ")");
    if (prompt.needle_span >= 0)
      for (int32_t r : prompt.answer_rows)
        if (std::find(req.rows.begin(), req.rows.end(), r) == req.rows.end()) req.rows.push_back(r);
    std::string spec = opt.checkpoint;
    if (spec.empty()) {
      RT_INPUT_CHECK(!config.checkpoint.dir.empty(), "attend needs a trained model: give --checkpoint P or set checkpoint.dir");
      spec = config.checkpoint.dir;
    }
    req.checkpoint = resolve_checkpoint(spec, mesh);
    p.out = opt.out.empty() ? config.run.out_dir + "/attention.h5" : opt.out;
    return p;
  });
  const Prompt& prompt = prep.prompt;
  const AttendRequest& req = prep.req;
  const std::string& out = prep.out;

  const AttendResult r = run_attend(config, mesh, req);
  if (mesh.rank() != 0) return;
  std::vector<int> heads = opt.heads;
  if (heads.empty())
    for (int h = 0; h < r.heads; ++h) heads.push_back(h);

  // Retrieval heads: the mean probability each answer row puts on the key digit it copies.
  std::vector<RetrievalHead> retrieval;
  const size_t H = static_cast<size_t>(r.heads), R = req.rows.size(), L = static_cast<size_t>(r.length),
               W = static_cast<size_t>(r.width);
  if (prompt.needle_span >= 0) {
    for (size_t li = 0; li < r.layers.size(); ++li)
      for (int h : heads) {
        const size_t item = li * H + static_cast<size_t>(h);
        double score = 0.0, needle = 0.0;
        for (size_t a = 0; a < prompt.answer_rows.size(); ++a) {
          const size_t slot = static_cast<size_t>(
              std::find(req.rows.begin(), req.rows.end(), prompt.answer_rows[a]) - req.rows.begin());
          score += r.rows[(item * R + slot) * L + static_cast<size_t>(prompt.copied_keys[a])];
          needle += r.stats[(item * L + static_cast<size_t>(prompt.answer_rows[a])) * W + kProbStats +
                            static_cast<size_t>(prompt.needle_span)];
        }
        const double n = static_cast<double>(prompt.answer_rows.size());
        retrieval.push_back({r.layers[li], h, score / n, needle / n});
      }
    std::stable_sort(retrieval.begin(), retrieval.end(), [](const RetrievalHead& a, const RetrievalHead& b) {
      return a.needle_mass != b.needle_mass ? a.needle_mass > b.needle_mass : a.score > b.score;
    });
  }
  write_h5(out, r, req, prompt, heads, retrieval, req.checkpoint);

  const size_t last = L - 1;
  for (size_t li = 0; li < r.layers.size(); ++li)
    for (int h : heads) {
      const float* st = &r.stats[((li * H + static_cast<size_t>(h)) * L + last) * W];
      std::string line = "{\"layer\": " + std::to_string(r.layers[li]) + ", \"head\": " + std::to_string(h) +
                         ", \"last_row\": {\"entropy\": " + fmt(st[0]) + ", \"mean_distance\": " + fmt(st[1]);
      for (size_t m = 0; m < req.spans.size(); ++m) line += ", \"" + req.spans[m].name + "\": " + fmt(st[kProbStats + m]);
      line += "}}";
      std::printf("%s\n", line.c_str());
    }
  std::string top;
  for (size_t i = 0; i < std::min(kTopRetrievalHeads, retrieval.size()); ++i)
    top += std::string(i ? ", " : "") + "[" + std::to_string(retrieval[i].layer) + ", " +
           std::to_string(retrieval[i].head) + ", " + fmt(retrieval[i].needle_mass) + ", " + fmt(retrieval[i].score) + "]";
  std::string summary = "{\"summary\": \"attend\", \"out\": \"" + out + "\", \"length\": " + std::to_string(r.length) +
                        ", \"layers\": " + std::to_string(r.layers.size()) + ", \"heads\": " + std::to_string(heads.size()) +
                        ", \"rows\": " + std::to_string(R) + ", \"pool\": " + std::to_string(req.pool) +
                        ", \"layout\": \"" + r.layout + "\", \"forward_seconds\": " + fmt(r.forward_seconds) +
                        ", \"attend_seconds\": " + fmt(r.attend_seconds) +
                        ", \"peak_mib\": " + fmt(static_cast<double>(r.peak_bytes) / (1 << 20));
  if (!retrieval.empty()) summary += ", \"retrieval_heads\": [" + top + "]";  // [layer, head, needle mass, copy]
  summary += "}";
  std::printf("%s\n", summary.c_str());
  std::fflush(stdout);
}

}  // namespace ringtrain
