// inspect and export. The safetensors file follows the format's definition: 8 bytes
// little-endian u64 N, an N-byte UTF-8 JSON header
//   {"__metadata__": {...}, "<name>": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}}
// padded with spaces to a multiple of 8, then the tensors' bytes back to back (offsets relative
// to the end of the header, no gaps), here in name order. JSON through nlohmann-json.
#include "src/checkpoint/checkpoint_tools.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/checkpoint/checkpoint.h"
#include "src/config/config.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

std::string num(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

void put_le64(std::ostream& o, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  o.write(reinterpret_cast<const char*>(b), 8);
}

bool little_endian() {
  const uint16_t x = 1;
  unsigned char c;
  std::memcpy(&c, &x, 1);
  return c == 1;
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  static uint32_t table[256];
  static bool ready = false;
  if (!ready) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void inspect_checkpoint(const std::string& path, std::ostream& out) {
  const CheckpointHeader h = read_checkpoint_header(path);
  out << "checkpoint   " << path << "\n"
      << "format       ringtrain-checkpoint, version " << h.version << "\n"
      << "step         " << h.step << "\n"
      << "tokens_seen  " << h.tokens_seen << "\n"
      << "lr           " << num(h.lr) << " (of the last step; the schedule is a function of the step)\n"
      << "seed         " << h.seed << " (no RNG state beyond it: data and init are functions of seed and step)\n"
      << "data         position " << h.data_position << " (next step's samples are (seed, step, i))\n"
      << "mesh         dp " << h.mesh_dp << " x cp " << h.mesh_cp << " x tp " << h.mesh_tp << ", cp_mode "
      << h.mesh_cp_mode << ", ulysses " << h.mesh_ulysses << ", zero " << h.mesh_zero << "\n"
      << "model        vocab_size " << h.vocab_size << ", d_model " << h.d_model << ", n_layers " << h.n_layers
      << ", n_heads " << h.n_heads << ", n_kv_heads " << h.n_kv_heads << ", d_ff " << h.d_ff
      << ", tie_embeddings " << (h.tie_embeddings ? "true" : "false") << "\n"
      << "--- config ---\n"
      << h.config_yaml << (h.config_yaml.empty() || h.config_yaml.back() == '\n' ? "" : "\n")
      << "--- tensors: name, dtype, shape, sum, crc32 of the little-endian bytes ---\n";
  int64_t total = 0;
  int count = 0;
  for (const char* group : {"model", "optimizer/exp_avg", "optimizer/exp_avg_sq"}) {
    for (const std::string& name : checkpoint_tensor_names(path, group)) {
      const std::string full = std::string(group) + "/" + name;
      std::vector<int64_t> shape;
      const std::vector<float> v = read_checkpoint_tensor(path, full, &shape);
      double sum = 0;
      for (float x : v) sum += x;
      const uint32_t crc = crc32_update(0, v.data(), v.size() * sizeof(float));
      char line[64];
      std::snprintf(line, sizeof line, "%08" PRIx32, crc);
      out << full << "  float32  " << shape_str(shape) << "  sum " << num(sum) << "  crc32 " << line << "\n";
      total += static_cast<int64_t>(v.size());
      ++count;
    }
  }
  out << "--- " << count << " tensors, " << total << " elements, " << total * 4 << " bytes of fp32; file "
      << std::filesystem::file_size(path) << " bytes ---\n";
}

void export_checkpoint(const std::string& path, const std::string& out_dir, std::ostream& log) {
  RT_CHECK(little_endian(), "export: safetensors needs little-endian bytes");
  const CheckpointHeader h = read_checkpoint_header(path);
  Config c;
  try {
    c = parse_config(h.config_yaml, path + " (stored config)", {}, ConfigChecks{false});
  } catch (const Error& e) {
    input_error("export: cannot read the config stored in ", path, ": ", e.what());
  }
  const std::vector<std::string> names = checkpoint_tensor_names(path, "model");
  if (names.empty()) input_error("export: checkpoint ", path, " holds no tensors under model/");

  // ordered_json: the header lists the tensors in the order their bytes follow.
  nlohmann::ordered_json hdr;
  hdr["__metadata__"] = {{"format", "pt"}, {"source", "ringtrain"}, {"step", std::to_string(h.step)}};
  uint64_t offset = 0;
  for (const std::string& n : names) {
    const std::vector<int64_t> shape = checkpoint_tensor_shape(path, "model/" + n);
    uint64_t numel = 1;
    for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
    hdr[n] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + numel * 4}}};
    offset += numel * 4;
  }
  std::string header = hdr.dump();
  while (header.size() % 8 != 0) header += ' ';

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) input_error("export: cannot create ", out_dir, ": ", ec.message());
  const std::string st_path = out_dir + "/model.safetensors";
  {
    std::ofstream o(st_path, std::ios::binary | std::ios::trunc);
    if (!o) input_error("export: cannot write ", st_path);
    put_le64(o, header.size());
    o.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (size_t i = 0; i < names.size(); ++i) {
      std::vector<int64_t> shape;
      const std::vector<float> v = read_checkpoint_tensor(path, "model/" + names[i], &shape);
      o.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
    }
    if (!o) input_error("export: writing ", st_path, " failed");
  }

  const ModelConfig& m = c.model;
  const std::string cfg_path = out_dir + "/config.json";
  {
    // A sliding window is Mistral's (same weights and names as Llama; transformers' Mistral
    // masks keys at distance >= sliding_window, as model.sliding_window does).
    const bool windowed = m.sliding_window > 0;
    nlohmann::ordered_json j;
    j["architectures"] = {windowed ? "MistralForCausalLM" : "LlamaForCausalLM"};
    j["model_type"] = windowed ? "mistral" : "llama";
    if (windowed) j["sliding_window"] = m.sliding_window;
    j["vocab_size"] = h.vocab_size;
    j["hidden_size"] = h.d_model;
    j["intermediate_size"] = h.d_ff;
    j["num_hidden_layers"] = h.n_layers;
    j["num_attention_heads"] = h.n_heads;
    j["num_key_value_heads"] = h.n_kv_heads;
    j["head_dim"] = h.d_model / h.n_heads;
    j["hidden_act"] = "silu";
    j["max_position_embeddings"] = c.train.seq_len;
    j["rms_norm_eps"] = m.norm_eps;
    j["rope_theta"] = m.rope_theta;
    // transformers 4's rope_scaling, which transformers 5 reads as rope_parameters.
    if (m.rope_scaling == RopeScalingType::kNone) {
      j["rope_scaling"] = nullptr;
    } else {
      nlohmann::ordered_json r;
      r["rope_type"] = to_string(m.rope_scaling);
      r["factor"] = m.rope_factor;
      if (m.rope_scaling == RopeScalingType::kLlama3 || m.rope_scaling == RopeScalingType::kYarn)
        r["original_max_position_embeddings"] = m.rope_original_max_position_embeddings;
      if (m.rope_scaling == RopeScalingType::kLlama3) {
        r["low_freq_factor"] = m.rope_low_freq_factor;
        r["high_freq_factor"] = m.rope_high_freq_factor;
      }
      if (m.rope_scaling == RopeScalingType::kYarn) {
        r["beta_fast"] = m.rope_beta_fast;
        r["beta_slow"] = m.rope_beta_slow;
        if (m.rope_attention_factor > 0) r["attention_factor"] = m.rope_attention_factor;
        r["truncate"] = m.rope_truncate;
      }
      j["rope_scaling"] = r;
    }
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["mlp_bias"] = false;
    j["initializer_range"] = m.init_std;
    j["tie_word_embeddings"] = h.tie_embeddings;
    j["use_cache"] = true;
    j["torch_dtype"] = "float32";
    std::ofstream o(cfg_path, std::ios::trunc);
    o << j.dump(2) << "\n";
    if (!o) input_error("export: cannot write ", cfg_path);
  }
  log << "exported " << names.size() << " tensors (" << offset << " bytes) of " << path << " (step " << h.step
      << ") to " << st_path << " and " << cfg_path << "\n";
}

}  // namespace ringtrain
