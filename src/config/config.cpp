// Strict YAML loading. Every key is looked up in the one table (config_table.cpp); every value is
// checked for type and range where it is read, so the error can name the key, the file, the line
// and the column; the cross-field rules run last, on the resolved config, before the caller
// allocates anything.
#include "src/config/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "src/config/config_table.h"
#include "src/config/suggest.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {
// A YAML event handler that drops every event (to count a file's documents).
struct IgnoreEvents : YAML::EventHandler {
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};
}  // namespace

int ModelConfig::ffn_dim() const {
  if (d_ff > 0) return d_ff;
  // Llama: two thirds of the 4 * d_model of a plain MLP (SwiGLU has three matrices, not two),
  // rounded up so the GEMMs keep aligned shapes.
  const long long h = 8LL * d_model / 3;
  return static_cast<int>((h + 31) / 32 * 32);
}

namespace {

// Where a value came from: a place in the file, or a --set override.
struct Origin {
  std::string where;  // "cfg.yaml line 3 column 7" or "--set train.lr=abc"
  bool is_override = false;
};

// "<message> in cfg.yaml line 3 column 7<suffix>" or "--set k=v: <message><suffix>".
[[noreturn]] void fail_at(const Origin& at, const std::string& message,
                          const std::string& suffix = "") {
  if (at.is_override) input_error(at.where, ": ", message, suffix);
  input_error(message, " in ", at.where, suffix);
}

Origin file_origin(const std::string& name, const YAML::Mark& mark) {
  // yaml-cpp counts from 0; editors count from 1.
  return Origin{name + " line " + std::to_string(mark.line + 1) + " column " +
                    std::to_string(mark.column + 1),
                false};
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

// A scalar that YAML would not read as a string: plain (unquoted). A quoted "64" is a string.
bool is_quoted(const YAML::Node& v) { return v.Tag() == "!"; }

bool parse_int64(const std::string& s, long long* out) {
  if (s.empty()) return false;
  std::size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (i == s.size()) return false;
  for (std::size_t j = i; j < s.size(); ++j)
    if (s[j] < '0' || s[j] > '9') return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE || *end != '\0') return false;
  *out = v;
  return true;
}

bool parse_u64(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  std::size_t i = s[0] == '+' ? 1 : 0;
  if (i == s.size()) return false;
  for (std::size_t j = i; j < s.size(); ++j)
    if (s[j] < '0' || s[j] > '9') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno == ERANGE || *end != '\0') return false;
  *out = v;
  return true;
}

bool parse_number(const std::string& s, double* out) {
  if (s.empty()) return false;
  // Decimal only: no hex floats, no inf/nan (strtod would take them).
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
      return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  // ERANGE with a finite result is an underflow to a subnormal or zero: keep it.
  if (end == s.c_str() || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

const char* node_kind(const YAML::Node& v) {
  switch (v.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    default: return "a scalar";
  }
}

std::string expected(const ConfigField& f) {
  switch (f.type) {
    case FieldType::kInt: return "an integer";
    case FieldType::kU64: return "a non-negative integer";
    case FieldType::kDouble: return "a number";
    case FieldType::kBool: return "true or false";
    case FieldType::kString: return "a string";
    case FieldType::kChoice: return "one of " + config_field_allowed(f);
  }
  return "";
}

void check_range(const ConfigField& f, double v, const std::string& text, const Origin& at) {
  const FieldRange& r = f.range;
  bool ok = true;
  if (r.lo) ok = ok && (r.lo_open ? v > *r.lo : v >= *r.lo);
  if (r.hi) ok = ok && (r.hi_open ? v < *r.hi : v <= *r.hi);
  if (!ok)
    fail_at(at, f.name() + " = " + text + " is out of range: allowed " + config_field_allowed(f));
}

// Sets `f` in `c` from the YAML value `v`, checking its type and range.
void assign(Config& c, const ConfigField& f, const YAML::Node& v, const Origin& at) {
  void* p = f.ref(c);
  const std::string name = f.name();
  if (v.IsMap() || v.IsSequence())
    fail_at(at, name + " expects " + expected(f) + ", got " + node_kind(v));
  if (v.IsNull()) {
    // `key:` with nothing (or ~): an empty string where a string may be empty, else an error.
    if (f.type == FieldType::kString && !f.non_empty) {
      static_cast<std::string*>(p)->clear();
      return;
    }
    fail_at(at, name + " expects " + expected(f) + ", got nothing");
  }
  const std::string s = v.Scalar();
  const bool quoted = is_quoted(v);
  auto wrong = [&]() {
    fail_at(at, name + " expects " + expected(f) + ", got " +
                    (quoted ? "the quoted string \"" + s + "\" (write it without quotes)"
                            : quote(s)));
  };
  switch (f.type) {
    case FieldType::kInt: {
      long long x = 0;
      if (quoted || !parse_int64(s, &x)) wrong();
      if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
        fail_at(at, name + " = " + s + " does not fit a 32-bit integer");
      check_range(f, static_cast<double>(x), s, at);
      *static_cast<int*>(p) = static_cast<int>(x);
      return;
    }
    case FieldType::kU64: {
      uint64_t x = 0;
      if (quoted || !parse_u64(s, &x)) wrong();
      *static_cast<uint64_t*>(p) = x;
      return;
    }
    case FieldType::kDouble: {
      double x = 0;
      if (quoted || !parse_number(s, &x)) wrong();
      check_range(f, x, s, at);
      *static_cast<double*>(p) = x;
      return;
    }
    case FieldType::kBool: {
      bool x = false;
      // YAML 1.1 booleans as yaml-cpp reads them: true/false, yes/no, on/off, y/n.
      if (quoted || !YAML::convert<bool>::decode(v, x)) wrong();
      *static_cast<bool*>(p) = x;
      return;
    }
    case FieldType::kString: {
      if (f.non_empty && s.empty()) fail_at(at, name + " must not be empty");
      *static_cast<std::string*>(p) = s;
      return;
    }
    case FieldType::kChoice: {
      const auto it = std::find(f.choices.begin(), f.choices.end(), s);
      if (it == f.choices.end())
        fail_at(at, name + " = " + quote(s) + " is not allowed: must be one of " +
                        config_field_allowed(f));
      *static_cast<int*>(p) = static_cast<int>(it - f.choices.begin());
      return;
    }
  }
}

bool is_section(const std::string& s) {
  for (const auto& sec : config_sections())
    if (sec == s) return true;
  return false;
}

// The nearest valid key to an unknown `section.key` (section "" at the top level), or "".
std::string suggest_key(const std::string& section, const std::string& key) {
  const auto& fields = config_fields();
  if (!section.empty()) {
    std::vector<std::string> leaves;
    for (const auto& f : fields)
      if (f.section == section) leaves.push_back(f.key);
    const std::string m = nearest_match(key, leaves);
    if (!m.empty()) return section + "." + m;
  }
  // The right key in the wrong section (train.dp) or at the top level (lr).
  for (const auto& f : fields)
    if (f.key == key && f.section != section) return f.name();
  std::vector<std::string> candidates;
  if (section.empty()) {
    candidates = config_sections();
    for (const auto& f : fields)
      if (f.section.empty()) candidates.push_back(f.key);
    const std::string m = nearest_match(key, candidates);
    if (!m.empty()) return m;
    candidates.clear();
  }
  for (const auto& f : fields) candidates.push_back(f.name());
  return nearest_match(section.empty() ? key : section + "." + key, candidates);
}

std::string suggestion_text(const std::string& section, const std::string& key) {
  const std::string m = suggest_key(section, key);
  return m.empty() ? std::string() : " (did you mean '" + m + "'?)";
}

class Loader {
 public:
  Loader(std::string name, ConfigChecks checks) : name_(std::move(name)), checks_(checks) {}

  Config run(const std::string& text, const std::vector<std::string>& overrides) {
    read_file(text);
    for (const auto& o : overrides) apply_override(o);
    resolve_and_check();
    config_.source = name_;
    return config_;
  }

 private:
  void read_file(const std::string& text) {
    // Not YAML::LoadAll: yaml-cpp 0.7's LoadAll never returns on some inputs (a file that
    // starts with ',': it builds empty documents until memory runs out; found by
    // tests/fuzz/fuzz_config.cpp). Count at most two documents, then load the first.
    YAML::Node root;
    try {
      std::istringstream in(text);
      YAML::Parser parser(in);
      IgnoreEvents ignore;
      int docs = 0;
      while (docs < 2 && parser.HandleNextDocument(ignore)) ++docs;
      if (docs > 1)
        input_error(name_, " holds 2 YAML documents (separated by ---); a config is one document");
      if (docs == 0) return;  // an empty file: every default
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      fail_at(file_origin(name_, e.mark), "invalid YAML: " + e.msg);
    }
    if (root.IsNull()) return;
    if (!root.IsMap())
      fail_at(file_origin(name_, root.Mark()),
              std::string("the top level must be a map of sections (run, model, parallel, "
                          "train, data, checkpoint, log), got ") +
                  node_kind(root));
    std::map<std::string, Origin> seen_sections;
    for (auto it = root.begin(); it != root.end(); ++it) {
      const Origin at = file_origin(name_, it->first.Mark());
      const std::string key = key_text(it->first, at);
      if (is_section(key)) {
        if (auto prev = seen_sections.find(key); prev != seen_sections.end())
          fail_at(at, "duplicate section '" + key + "' (first at " + prev->second.where + ")");
        seen_sections[key] = at;
        read_section(key, it->second, at);
        continue;
      }
      const ConfigField* f = find_config_field(key);
      if (f != nullptr && !f->section.empty())
        fail_at(at, "the key " + quote(key) + " must be nested in its section ('" + f->section +
                        ":' and under it '  " + f->key + ": ...'); dotted names are for --set");
      if (f == nullptr) fail_at(at, "unknown key " + quote(key), suggestion_text("", key));
      set_from_file(*f, it->second, at);
    }
  }

  void read_section(const std::string& section, const YAML::Node& node, const Origin& at) {
    if (node.IsNull()) return;  // `train:` with nothing under it
    if (!node.IsMap())
      fail_at(value_origin(node, at), "'" + section + "' is a section and must be a map of " +
                                          "its keys, got " + node_kind(node));
    for (auto it = node.begin(); it != node.end(); ++it) {
      const Origin key_at = file_origin(name_, it->first.Mark());
      const std::string key = key_text(it->first, key_at);
      const ConfigField* f = find_config_field(section + "." + key);
      if (f == nullptr)
        fail_at(key_at, "unknown key " + quote(section + "." + key),
                suggestion_text(section, key));
      set_from_file(*f, it->second, key_at);
    }
  }

  std::string key_text(const YAML::Node& key, const Origin& at) {
    if (!key.IsScalar()) fail_at(at, std::string("a key must be a plain name, got ") + node_kind(key));
    return key.Scalar();
  }

  // Errors about a value point at the value; a missing value has no place of its own, so
  // they point at its key.
  Origin value_origin(const YAML::Node& v, const Origin& key_at) {
    return v.IsNull() ? key_at : file_origin(name_, v.Mark());
  }

  void set_from_file(const ConfigField& f, const YAML::Node& v, const Origin& key_at) {
    const std::string name = f.name();
    if (auto prev = origins_.find(name); prev != origins_.end())
      fail_at(key_at, "duplicate key " + quote(name) + " (first at " + prev->second.where + ")");
    const Origin at = value_origin(v, key_at);
    assign(config_, f, v, at);
    origins_[name] = at;
  }

  void apply_override(const std::string& text) {
    const Origin at{"--set " + text, true};
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0)
      fail_at(at, "expected section.key=value (e.g. --set train.lr=3e-4)");
    const std::string name = text.substr(0, eq);
    const std::string value = text.substr(eq + 1);
    if (is_section(name))
      fail_at(at, quote(name) + " is a section; set one of its keys, e.g. " +
                      quote(name + "." + first_key(name)));
    const ConfigField* f = find_config_field(name);
    if (f == nullptr) {
      const auto dot = name.find('.');
      const std::string section = dot == std::string::npos ? "" : name.substr(0, dot);
      const std::string key = dot == std::string::npos ? name : name.substr(dot + 1);
      fail_at(at, "unknown key " + quote(name),
              suggestion_text(is_section(section) ? section : "", is_section(section) ? key : name));
    }
    YAML::Node v;
    try {
      v = YAML::Load(value);  // typed like the YAML file: 3e-4 a number, true a bool
    } catch (const YAML::ParserException& e) {
      fail_at(at, "the value " + quote(value) + " is not valid YAML (" + e.msg + ")");
    }
    assign(config_, *f, v, at);
    origins_[name] = at;
  }

  static std::string first_key(const std::string& section) {
    for (const auto& f : config_fields())
      if (f.section == section) return f.key;
    return "key";
  }

  // " (cfg.yaml line 3 column 7)", " (--set parallel.tp=4)" or " (default)".
  std::string where(const std::string& name) const {
    auto it = origins_.find(name);
    return it == origins_.end() ? " (default)" : " (" + it->second.where + ")";
  }

  // "parallel.tp = 4 (cfg.yaml line 12 column 7)"
  std::string kv(const std::string& name) const {
    const ConfigField* f = find_config_field(name);
    RT_CHECK(f != nullptr, "no config key named ", name);
    return name + " = " + config_field_text(config_, *f) + where(name);
  }

  void resolve_and_check() {
    const ModelConfig& m = config_.model;
    ParallelConfig& p = config_.parallel;
    const TrainConfig& t = config_.train;
    const DataConfig& d = config_.data;

    // Context-parallel mode and the Ulysses degree. In ulysses mode the whole cp group is one
    // Ulysses group, so the degree is cp; 1 (the default) is read as "cp" and resolved here,
    // so the dumped config states the effective degree.
    if (p.cp_mode == CpMode::kRing) {
      if (p.ulysses_degree != 1)
        input_error(kv("parallel.ulysses_degree"),
                    " is only used with parallel.cp_mode ulysses or hybrid, but ",
                    kv("parallel.cp_mode"), "; remove it or set it to 1");
    } else if (p.cp_mode == CpMode::kUlysses) {
      if (p.ulysses_degree == 1) {
        p.ulysses_degree = p.cp;
        origins_["parallel.ulysses_degree"] = Origin{"= parallel.cp in ulysses mode", false};
      }
      if (p.ulysses_degree != p.cp)
        input_error(kv("parallel.ulysses_degree"), " must be 1 or equal to ", kv("parallel.cp"),
                    " with parallel.cp_mode = ulysses (all cp ranks form one Ulysses group); "
                    "for a Ulysses x ring split use cp_mode hybrid");
    } else {  // hybrid
      if (p.ulysses_degree <= 1 || p.ulysses_degree >= p.cp || p.cp % p.ulysses_degree != 0)
        input_error(kv("parallel.ulysses_degree"), " must be > 1, < cp and divide ",
                    kv("parallel.cp"),
                    " with parallel.cp_mode = hybrid (cp = ulysses_degree x ring size); "
                    "for pure Ulysses or pure ring use cp_mode ulysses or ring");
    }

    // parallel.zero1 is the older spelling of zero: 1.
    if (p.zero1) {
      if (origins_.count("parallel.zero") && p.zero != ZeroLevel::k1)
        input_error(kv("parallel.zero1"), " means parallel.zero: 1, but ", kv("parallel.zero"),
                    "; remove parallel.zero1");
      if (p.zero != ZeroLevel::k1) origins_["parallel.zero"] = Origin{"= parallel.zero1", false};
      p.zero = ZeroLevel::k1;
    }

    // Model shape.
    if (m.d_model % m.n_heads != 0)
      input_error(kv("model.d_model"), " is not divisible by ", kv("model.n_heads"),
                  ": the head dimension is d_model / n_heads");
    if (m.head_dim() % 2 != 0)
      input_error("the head dimension model.d_model / model.n_heads = ", m.d_model, " / ",
                  m.n_heads, " = ", m.head_dim(), " must be even (RoPE rotates pairs of "
                  "dimensions); check ", kv("model.d_model"), " and ", kv("model.n_heads"));
    if ((m.rope_scaling == RopeScalingType::kLlama3 || m.rope_scaling == RopeScalingType::kYarn) &&
        m.rope_original_max_position_embeddings == 0)
      input_error(kv("model.rope_original_max_position_embeddings"), " must be set (> 0) with ",
                  kv("model.rope_scaling"), ": the scaling is relative to the pretraining context");
    if (m.rope_scaling == RopeScalingType::kLlama3 && m.rope_high_freq_factor <= m.rope_low_freq_factor)
      input_error(kv("model.rope_high_freq_factor"), " must exceed ", kv("model.rope_low_freq_factor"),
                  " (llama3 blends the frequencies between the two wavelengths)");
    if (m.n_heads % m.n_kv_heads != 0)
      input_error(kv("model.n_heads"), " is not divisible by ", kv("model.n_kv_heads"),
                  ": grouped-query attention shares each K/V head among n_heads / n_kv_heads "
                  "query heads");

    // Tensor parallelism splits heads, MLP columns and the vocabulary.
    if (m.n_heads % p.tp != 0)
      input_error(kv("model.n_heads"), " is not divisible by ", kv("parallel.tp"),
                  ": attention heads are split across tensor-parallel ranks");
    if (m.n_kv_heads % p.tp != 0)
      input_error(kv("model.n_kv_heads"), " is not divisible by ", kv("parallel.tp"),
                  ": key/value heads are split across tensor-parallel ranks");
    if (m.vocab_size % p.tp != 0)
      input_error(kv("model.vocab_size"), " is not divisible by ", kv("parallel.tp"),
                  ": the embedding and output projection are split by vocabulary across "
                  "tensor-parallel ranks (pad the vocabulary)");
    if (m.ffn_dim() % p.tp != 0)
      input_error("the MLP hidden size ", m.ffn_dim(), " from ", kv("model.d_ff"),
                  " is not divisible by ", kv("parallel.tp"),
                  ": MLP columns are split across tensor-parallel ranks");

    // Ulysses re-shards heads: each of its ranks takes a share of this tp rank's query heads
    // and receives the kv heads those read (duplicated when the degree exceeds the kv heads,
    // parallel/context_attention.h), so only the query heads limit the degree.
    if (p.ulysses_degree > 1) {
      const int heads = m.n_heads / p.tp;
      if (heads % p.ulysses_degree != 0)
        input_error("the Ulysses degree ", kv("parallel.ulysses_degree"),
                    " must divide the heads per tensor-parallel rank, model.n_heads / "
                    "parallel.tp = ", m.n_heads, " / ", p.tp, " = ", heads);
    }

    // The zigzag layout cuts each sequence into 2 * cp equal chunks.
    if (t.seq_len % (2 * p.cp) != 0)
      input_error(kv("train.seq_len"), " is not divisible by 2 * parallel.cp = ", 2 * p.cp,
                  ", where ", kv("parallel.cp"), ": the zigzag layout splits each sequence "
                  "into 2 * cp equal chunks (rank r holds chunks r and 2*cp-1-r)");
    if (p.sequence_parallel && p.tp > 1 && (t.seq_len / p.cp) % p.tp != 0)
      input_error("parallel.sequence_parallel splits each rank's ", t.seq_len / p.cp,
                  " tokens (train.seq_len / parallel.cp) across ", kv("parallel.tp"),
                  ", which does not divide them (", kv("train.seq_len"), ")");

    // Optimizer.
    if (t.min_lr > t.lr)
      input_error(kv("train.min_lr"), " must not exceed ", kv("train.lr"));

    // Data.
    if (d.passkey_min_depth > d.passkey_max_depth)
      input_error(kv("data.passkey_min_depth"), " must not exceed ",
                  kv("data.passkey_max_depth"));
    if ((d.task == Task::kPasskey || d.task == Task::kRecall) && t.seq_len < kMinSyntheticSeqLen)
      input_error(kv("train.seq_len"), " is too short for ", kv("data.task"),
                  ": the prompt needs at least ", kMinSyntheticSeqLen, " tokens");
    if (d.task == Task::kText) {
      if (d.train.empty())
        input_error("data.train (the training token file) is required with ",
                    kv("data.task"), "; make one with `ringtrain prepare-text`");
      if (checks_.paths) {
        must_exist_data("data.train", d.train, d.format);
        if (!d.val.empty()) must_exist_data("data.val", d.val, d.format);
      }
    }
    if (checks_.paths && !d.prompt_tokens.empty()) must_exist("data.prompt_tokens", d.prompt_tokens);
    const std::string& resume = config_.checkpoint.resume;
    if (checks_.paths && resume != "auto" && resume != "none") must_exist("checkpoint.resume", resume);
    if (checks_.paths && !config_.checkpoint.init_from.empty()) must_exist("checkpoint.init_from", config_.checkpoint.init_from);
  }

  // A token file, or both files of a Megatron pair PREFIX.bin + PREFIX.idx.
  void must_exist_data(const std::string& name, const std::string& path, DataFormat format) const {
    if (format == DataFormat::kRingtrain) return must_exist(name, path);
    std::error_code ec;
    for (const char* ext : {".bin", ".idx"})
      if (!std::filesystem::exists(path + ext, ec))
        input_error(kv(name), " with ", kv("data.format"), ": ", path, ext,
                    " does not exist (relative paths are relative to the working directory ",
                    std::filesystem::current_path(ec).string(), ")");
  }

  void must_exist(const std::string& name, const std::string& path) const {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      input_error(kv(name), " does not exist (relative paths are relative to the working "
                            "directory ", std::filesystem::current_path(ec).string(), ")");
  }

  static constexpr int kMinSyntheticSeqLen = 64;

  std::string name_;
  ConfigChecks checks_;
  Config config_;
  std::map<std::string, Origin> origins_;  // where each key set so far got its value
};

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& name,
                    const std::vector<std::string>& overrides, const ConfigChecks& checks) {
  return Loader(name, checks).run(yaml_text, overrides);
}

Config parse_config(const std::string& yaml_text, const std::string& name,
                    const std::vector<std::string>& overrides) {
  return parse_config(yaml_text, name, overrides, ConfigChecks{});
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   const ConfigChecks& checks) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) input_error("config file '", path, "' does not exist");
  if (std::filesystem::is_directory(path, ec))
    input_error("config file '", path, "' is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) input_error("cannot read config file '", path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides, checks);
}

void validate_for_world(const Config& config, int world_size) {
  const ParallelConfig& p = config.parallel;
  const long long product = 1LL * p.dp * p.cp * p.tp;
  if (product != world_size)
    input_error("parallel: dp*cp*tp = ", p.dp, "*", p.cp, "*", p.tp, " = ", product,
                " but the job has ", world_size, world_size == 1 ? " rank" : " ranks",
                " (launch with mpirun -np ", product, " or change parallel.dp/cp/tp in ",
                config.source.empty() ? std::string("the config") : config.source, ")");
}

std::string dump_config(const Config& config) {
  std::ostringstream os;
  std::string section = "\x01";  // no section yet
  for (const auto& f : config_fields()) {
    if (f.section != section) {
      section = f.section;
      if (!section.empty()) os << section << ":\n";
    }
    os << (f.section.empty() ? "" : "  ") << f.key << ": " << config_field_text(config, f)
       << "\n";
  }
  return os.str();
}

}  // namespace ringtrain
