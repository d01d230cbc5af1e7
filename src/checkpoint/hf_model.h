// Hugging Face model directories (what `ringtrain import` reads): config.json of a Llama or
// Mistral causal LM, and its weights in safetensors, one file (model.safetensors) or sharded
// (model.safetensors.index.json naming a file per tensor).
//
// safetensors, as the format defines it: 8 bytes little-endian u64 N, an N-byte UTF-8 JSON
// header {"__metadata__": {string: string}, "<name>": {"dtype": "F32", "shape": [...],
// "data_offsets": [begin, end]}, ...}, then the tensors' bytes (offsets relative to the end of
// the header, row-major, little-endian). Everything that does not hold (a short file, a header
// that is not JSON or overruns the file, offsets outside the data or not matching dtype x
// shape) is an input error naming the file. Only F32, F16 and BF16 tensors are read.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace ringtrain {

// config.json as ringtrain's model section. Input errors name the key for anything the model
// cannot represent: another architecture, biases, an activation other than silu, a head_dim
// other than hidden_size / num_attention_heads, a rope type other than default, linear,
// llama3 and yarn (or a rope parameter those do not have), partial rotary embeddings.
struct HfConfig {
  ModelConfig model;
  int max_position_embeddings = 0;  // 0: not given
  std::string model_type;           // "llama" | "mistral"
};
HfConfig parse_hf_config(const std::string& json_text, const std::string& where);

// The index of a sharded checkpoint: tensor name -> shard file name (a plain file name in the
// same directory; a path is refused).
std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text, const std::string& where);

enum class SafetensorsDType { kF32, kF16, kBF16 };

struct SafetensorsEntry {
  SafetensorsDType dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // absolute byte offsets in the file
};

// The header of a whole safetensors file held in memory (data: the file's `size` bytes).
std::map<std::string, SafetensorsEntry> parse_safetensors(const uint8_t* data, size_t size, const std::string& where);

// The tensor's values as fp32 (exact for all three dtypes) into out[numel].
void safetensors_to_f32(const uint8_t* file_data, const SafetensorsEntry& e, float* out);

// A directory's weights: every tensor of its safetensors file(s), memory-mapped.
class HfWeights {
 public:
  explicit HfWeights(const std::string& dir);
  ~HfWeights();
  HfWeights(const HfWeights&) = delete;
  HfWeights& operator=(const HfWeights&) = delete;

  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  std::vector<float> read(const std::string& name) const;
  const std::string& file_of(const std::string& name) const;

 private:
  struct Mapped;
  std::vector<std::unique_ptr<Mapped>> files_;
  std::map<std::string, std::pair<size_t, SafetensorsEntry>> where_;  // name -> (file, entry)
};

}  // namespace ringtrain
