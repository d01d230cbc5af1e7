#include "src/checkpoint/hf_model.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "src/core/error.h"

namespace ringtrain {
namespace {

using json = nlohmann::json;

json parse_json(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    input_error(where, ": not valid JSON: ", e.what());
  }
}

// Reads of one JSON object with the key named in every error.
struct Obj {
  const json& j;
  std::string where;
  bool has(const char* k) const { return j.contains(k) && !j.at(k).is_null(); }
  const json& at(const char* k) const {
    if (!has(k)) input_error(where, ": missing key \"", k, "\"");
    return j.at(k);
  }
  int64_t integer(const char* k) const {
    const json& v = at(k);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {  // 4096.0: an integer written as a float (in range before the cast)
      const double d = v.get<double>();
      if (std::fabs(d) < 9.0e18 && d == std::floor(d)) return static_cast<int64_t>(d);
    }
    input_error(where, ": \"", k, "\" must be an integer, got ", v.dump());
  }
  int int_in(const char* k, int64_t lo, int64_t hi) const {
    const int64_t v = integer(k);
    if (v < lo || v > hi) input_error(where, ": \"", k, "\" = ", v, " is outside [", lo, ", ", hi, "]");
    return static_cast<int>(v);
  }
  double number(const char* k) const {
    const json& v = at(k);
    if (!v.is_number()) input_error(where, ": \"", k, "\" must be a number, got ", v.dump());
    return v.get<double>();
  }
  bool boolean(const char* k) const {
    const json& v = at(k);
    if (!v.is_boolean()) input_error(where, ": \"", k, "\" must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  std::string string(const char* k) const {
    const json& v = at(k);
    if (!v.is_string()) input_error(where, ": \"", k, "\" must be a string, got ", v.dump());
    return v.get<std::string>();
  }
};

constexpr int64_t kMaxDim = int64_t{1} << 31;

// rope_scaling (transformers 4) or rope_parameters (transformers 5) into the model section.
void read_rope(const Obj& o, const char* key, ModelConfig& m) {
  const json& r = o.at(key);
  if (!r.is_object()) input_error(o.where, ": \"", key, "\" must be an object, got ", r.dump());
  const Obj p{r, o.where + " " + key};
  std::string type = p.has("rope_type") ? p.string("rope_type") : p.has("type") ? p.string("type") : "default";
  if (p.has("rope_theta")) m.rope_theta = p.number("rope_theta");
  std::set<std::string> allowed = {"rope_type", "type", "rope_theta"};
  if (type == "default") {
    m.rope_scaling = RopeScalingType::kNone;
  } else if (type == "linear") {
    m.rope_scaling = RopeScalingType::kLinear;
    allowed.insert("factor");
  } else if (type == "llama3") {
    m.rope_scaling = RopeScalingType::kLlama3;
    allowed.insert({"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"});
  } else if (type == "yarn") {
    m.rope_scaling = RopeScalingType::kYarn;
    allowed.insert({"factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor",
                    "truncate"});
  } else {
    input_error(o.where, ": ", key, ".rope_type \"", type,
                "\" is not supported (ringtrain has default, linear, llama3 and yarn)");
  }
  for (auto it = r.begin(); it != r.end(); ++it) {
    if (it.value().is_null()) continue;
    if (it.key() == "partial_rotary_factor" && it.value().is_number() && it.value().get<double>() == 1.0) continue;
    if (!allowed.count(it.key()))
      input_error(o.where, ": ", key, ".", it.key(), " is not supported with rope_type ", type);
  }
  if (m.rope_scaling == RopeScalingType::kNone) return;
  m.rope_factor = p.number("factor");
  if (!(m.rope_factor >= 1.0)) input_error(o.where, ": ", key, ".factor must be >= 1, got ", m.rope_factor);
  if (p.has("original_max_position_embeddings"))
    m.rope_original_max_position_embeddings = p.int_in("original_max_position_embeddings", 1, kMaxDim);
  if (p.has("low_freq_factor")) m.rope_low_freq_factor = p.number("low_freq_factor");
  if (p.has("high_freq_factor")) m.rope_high_freq_factor = p.number("high_freq_factor");
  if (p.has("beta_fast")) m.rope_beta_fast = p.number("beta_fast");
  if (p.has("beta_slow")) m.rope_beta_slow = p.number("beta_slow");
  if (p.has("attention_factor")) m.rope_attention_factor = p.number("attention_factor");
  if (p.has("truncate")) m.rope_truncate = p.boolean("truncate");
  if (m.rope_scaling == RopeScalingType::kLlama3) {
    if (!(m.rope_low_freq_factor > 0 && m.rope_high_freq_factor > m.rope_low_freq_factor))
      input_error(o.where, ": ", key, ": llama3 needs 0 < low_freq_factor < high_freq_factor, got ",
                  m.rope_low_freq_factor, " and ", m.rope_high_freq_factor);
  }
  for (double v : {m.rope_beta_fast, m.rope_beta_slow, m.rope_low_freq_factor, m.rope_high_freq_factor})
    if (!(v > 0)) input_error(o.where, ": ", key, ": parameters must be > 0");
  if (!(m.rope_attention_factor >= 0)) input_error(o.where, ": ", key, ".attention_factor must be >= 0");
}

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& where) {
  if (a != 0 && b > UINT64_MAX / a) input_error(where, ": tensor size overflows");
  return a * b;
}

float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, u;
  if (exp == 0x1F) {
    u = sign | 0x7F800000u | (man << 13);  // inf, nan
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: normalize
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400u) == 0);
    u = sign | (static_cast<uint32_t>(112 - e) << 23) | ((man & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

HfConfig parse_hf_config(const std::string& json_text, const std::string& where) {
  const json j = parse_json(json_text, where);
  if (!j.is_object()) input_error(where, ": config.json must be a JSON object");
  const Obj o{j, where};
  HfConfig out;
  out.model_type = o.string("model_type");
  if (out.model_type != "llama" && out.model_type != "mistral")
    input_error(where, ": \"model_type\" = \"", out.model_type, "\" is not supported (llama or mistral)");
  if (o.has("architectures")) {
    const json& a = o.at("architectures");
    if (!a.is_array()) input_error(where, ": \"architectures\" must be a list");
    for (const json& x : a)
      if (!x.is_string() || (x != "LlamaForCausalLM" && x != "MistralForCausalLM"))
        input_error(where, ": \"architectures\" names ", x.dump(),
                    "; ringtrain imports LlamaForCausalLM and MistralForCausalLM");
  }
  for (const char* k : {"attention_bias", "mlp_bias"})
    if (o.has(k) && o.boolean(k)) input_error(where, ": \"", k, "\" = true: ringtrain's model has no biases");
  if (o.has("hidden_act") && o.string("hidden_act") != "silu")
    input_error(where, ": \"hidden_act\" = \"", o.string("hidden_act"), "\": ringtrain's MLP is SwiGLU (silu)");
  if (o.has("partial_rotary_factor") && o.number("partial_rotary_factor") != 1.0)
    input_error(where, ": \"partial_rotary_factor\" = ", o.number("partial_rotary_factor"),
                ": ringtrain rotates the whole head");
  ModelConfig& m = out.model;
  m.vocab_size = o.int_in("vocab_size", 1, kMaxDim);
  m.d_model = o.int_in("hidden_size", 1, kMaxDim);
  m.d_ff = o.int_in("intermediate_size", 1, kMaxDim);
  m.n_layers = o.int_in("num_hidden_layers", 1, 1 << 20);
  m.n_heads = o.int_in("num_attention_heads", 1, 1 << 20);
  m.n_kv_heads = o.has("num_key_value_heads") ? o.int_in("num_key_value_heads", 1, 1 << 20) : m.n_heads;
  if (o.has("head_dim") && static_cast<int64_t>(o.int_in("head_dim", 1, kMaxDim)) * m.n_heads != m.d_model)
    input_error(where, ": \"head_dim\" = ", o.integer("head_dim"), " is not hidden_size / num_attention_heads = ",
                m.d_model, " / ", m.n_heads, " (ringtrain's heads split the hidden size)");
  if (o.has("rms_norm_eps")) m.norm_eps = o.number("rms_norm_eps");
  if (!(m.norm_eps > 0)) input_error(where, ": \"rms_norm_eps\" must be > 0");
  m.tie_embeddings = o.has("tie_word_embeddings") && o.boolean("tie_word_embeddings");
  if (o.has("initializer_range")) m.init_std = o.number("initializer_range");
  if (!(m.init_std > 0)) m.init_std = 0.02;
  if (o.has("max_position_embeddings")) out.max_position_embeddings = o.int_in("max_position_embeddings", 1, kMaxDim);
  if (o.has("rope_theta")) m.rope_theta = o.number("rope_theta");
  if (o.has("rope_parameters")) read_rope(o, "rope_parameters", m);
  else if (o.has("rope_scaling")) read_rope(o, "rope_scaling", m);
  if (!(m.rope_theta > 0)) input_error(where, ": \"rope_theta\" must be > 0, got ", m.rope_theta);
  // Mistral's window (null: none); a Llama config has none. use_sliding_window (Qwen-style) off
  // means no window whatever sliding_window says.
  if (o.has("sliding_window") && !(o.has("use_sliding_window") && !o.boolean("use_sliding_window")))
    m.sliding_window = o.int_in("sliding_window", 0, kMaxDim);
  return out;
}

std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text, const std::string& where) {
  const json j = parse_json(json_text, where);
  if (!j.is_object() || !j.contains("weight_map") || !j.at("weight_map").is_object())
    input_error(where, ": no \"weight_map\" object");
  std::map<std::string, std::string> out;
  for (auto it = j.at("weight_map").begin(); it != j.at("weight_map").end(); ++it) {
    if (!it.value().is_string()) input_error(where, ": weight_map[\"", it.key(), "\"] must be a file name");
    const std::string f = it.value().get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "." || f == "..")
      input_error(where, ": weight_map[\"", it.key(), "\"] = \"", f, "\" is not a file name in the directory");
    out[it.key()] = f;
  }
  return out;
}

std::map<std::string, SafetensorsEntry> parse_safetensors(const uint8_t* data, size_t size, const std::string& where) {
  if (size < 8) input_error(where, ": ", size, " bytes, too short for a safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > size - 8) input_error(where, ": header of ", n, " bytes overruns the file (", size, " bytes)");
  const std::string text(reinterpret_cast<const char*>(data) + 8, n);
  const json j = parse_json(text, where + " header");
  if (!j.is_object()) input_error(where, ": the header must be a JSON object");
  const uint64_t data_start = 8 + n, data_size = size - data_start;
  std::map<std::string, SafetensorsEntry> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string name = where + " tensor " + it.key();
    const json& t = it.value();
    if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets"))
      input_error(name, ": needs dtype, shape and data_offsets");
    const json& dt = t.at("dtype");
    SafetensorsEntry e;
    size_t elem = 0;
    if (dt == "F32") e.dtype = SafetensorsDType::kF32, elem = 4;
    else if (dt == "F16") e.dtype = SafetensorsDType::kF16, elem = 2;
    else if (dt == "BF16") e.dtype = SafetensorsDType::kBF16, elem = 2;
    else input_error(name, ": dtype ", dt.dump(), " is not supported (F32, F16, BF16)");
    const json& sh = t.at("shape");
    if (!sh.is_array()) input_error(name, ": shape must be a list");
    uint64_t numel = 1;
    for (const json& d : sh) {
      if (!d.is_number_unsigned()) input_error(name, ": shape ", sh.dump(), " is not a list of sizes");
      const uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(kMaxDim)) input_error(name, ": dimension ", v, " too large");
      e.shape.push_back(static_cast<int64_t>(v));
      numel = checked_mul(numel, v, name);
    }
    const json& off = t.at("data_offsets");
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      input_error(name, ": data_offsets must be [begin, end]");
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > data_size)
      input_error(name, ": data_offsets [", b, ", ", en, "] outside the ", data_size, " data bytes");
    if (en - b != checked_mul(numel, elem, name))
      input_error(name, ": data_offsets hold ", en - b, " bytes, shape x dtype needs ", numel * elem);
    e.begin = data_start + b;
    e.end = data_start + en;
    out[it.key()] = std::move(e);
  }
  return out;
}

void safetensors_to_f32(const uint8_t* file_data, const SafetensorsEntry& e, float* out) {
  const uint8_t* p = file_data + e.begin;
  const uint64_t bytes = e.end - e.begin;
  switch (e.dtype) {
    case SafetensorsDType::kF32:
      for (uint64_t i = 0; i < bytes / 4; ++i) {
        const uint32_t u = static_cast<uint32_t>(p[4 * i]) | static_cast<uint32_t>(p[4 * i + 1]) << 8 |
                           static_cast<uint32_t>(p[4 * i + 2]) << 16 | static_cast<uint32_t>(p[4 * i + 3]) << 24;
        std::memcpy(out + i, &u, 4);
      }
      break;
    case SafetensorsDType::kF16:
    case SafetensorsDType::kBF16:
      for (uint64_t i = 0; i < bytes / 2; ++i) {
        const uint16_t h = static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
        out[i] = e.dtype == SafetensorsDType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      break;
  }
}

struct HfWeights::Mapped {
  std::string path;
  const uint8_t* data = nullptr;
  size_t size = 0;
  ~Mapped() {
    if (data != nullptr && size > 0) munmap(const_cast<uint8_t*>(data), size);
  }
};

HfWeights::HfWeights(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> shards;
  std::map<std::string, std::string> index;
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (fs::exists(index_path)) {
    std::ifstream f(index_path);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f) input_error("cannot read ", index_path);
    index = parse_safetensors_index(ss.str(), index_path);
    std::set<std::string> files;
    for (const auto& [name, file] : index) files.insert(file);
    shards.assign(files.begin(), files.end());
  } else if (fs::exists(dir + "/model.safetensors")) {
    shards.push_back("model.safetensors");
  } else {
    input_error(dir, ": no model.safetensors and no model.safetensors.index.json (pytorch_model.bin is not read: "
                     "save with safe_serialization)");
  }
  for (const std::string& s : shards) {
    auto m = std::make_unique<Mapped>();
    m->path = dir + "/" + s;
    const int fd = ::open(m->path.c_str(), O_RDONLY);
    if (fd < 0) input_error("cannot open ", m->path, ": ", std::strerror(errno));
    struct stat st{};
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
      ::close(fd);
      input_error(m->path, ": empty or unreadable");
    }
    m->size = static_cast<size_t>(st.st_size);
    void* p = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) input_error("cannot map ", m->path, ": ", std::strerror(errno));
    m->data = static_cast<const uint8_t*>(p);
    const size_t fi = files_.size();
    for (auto& [name, e] : parse_safetensors(m->data, m->size, m->path)) {
      if (!index.empty()) {
        const auto it = index.find(name);
        if (it == index.end() || it->second != s)
          input_error(m->path, ": holds ", name, ", which ", index_path, " places ",
                      it == index.end() ? std::string("nowhere") : "in " + it->second);
      }
      if (where_.count(name)) input_error(m->path, ": ", name, " is also in ", files_[where_[name].first]->path);
      where_[name] = {fi, e};
    }
    files_.push_back(std::move(m));
  }
  for (const auto& [name, file] : index)
    if (!where_.count(name)) input_error(index_path, ": ", name, " is not in ", dir, "/", file);
}

HfWeights::~HfWeights() = default;

std::vector<std::string> HfWeights::names() const {
  std::vector<std::string> n;
  for (const auto& [name, e] : where_) n.push_back(name);
  return n;
}

const SafetensorsEntry& HfWeights::entry(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) input_error("import: the weights have no tensor ", name);
  return it->second.second;
}

const std::string& HfWeights::file_of(const std::string& name) const {
  entry(name);
  return files_[where_.at(name).first]->path;
}

std::vector<float> HfWeights::read(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  uint64_t numel = 1;
  for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
  std::vector<float> v(numel);
  safetensors_to_f32(files_[where_.at(name).first]->data, e, v.data());
  return v;
}

}  // namespace ringtrain
