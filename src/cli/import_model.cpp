#include "src/cli/import_model.h"

#include <mpi.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "parallel/mesh.h"
#include "src/checkpoint/checkpoint.h"
#include "src/checkpoint/hf_model.h"
#include "src/config/config.h"
#include "src/core/error.h"
#include "src/model/llama.h"
#include "src/train/compute.h"

namespace ringtrain {
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

std::string yaml_path_of(const std::string& out) {
  std::filesystem::path p(out);
  return (p.parent_path() / p.stem()).string() + ".yaml";
}

}  // namespace

void import_hf_model(const std::string& hf_dir, const std::string& out_path, std::ostream& log) {
  const std::string cfg_path = hf_dir + "/config.json";
  std::ifstream cf(cfg_path);
  if (!cf) input_error("import: cannot read ", cfg_path);
  std::stringstream text;
  text << cf.rdbuf();
  const HfConfig hf = parse_hf_config(text.str(), cfg_path);

  // The stored config: defaults with the model section of config.json, the model's context as
  // train.seq_len (export writes it back as max_position_embeddings). Parsed back from its
  // YAML so that every rule of a hand-written config holds.
  Config c;
  c.model = hf.model;
  if (hf.max_position_embeddings >= 2 && hf.max_position_embeddings % 2 == 0) c.train.seq_len = hf.max_position_embeddings;
  try {
    c = parse_config(dump_config(c), cfg_path + " (as a ringtrain config)", {}, ConfigChecks{.paths = false});
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kInput) throw;
    input_error("import: ", cfg_path, " gives a model ringtrain cannot run: ", e.what());
  }

  HfWeights weights(hf_dir);
  Mesh mesh(MPI_COMM_SELF, MeshShape{1, 1, 1, 1});
  Compute compute(c, mesh, /*force_cpu=*/true);
  LlamaModel model(c, mesh, compute.backend(), compute.groups());
  ParamStore& params = model.params();
  std::set<std::string> used;
  size_t count = 0;
  for (const Param& p : params.params()) {
    const std::string& name = p.info.name;
    if (!weights.has(name)) input_error("import: ", hf_dir, " has no tensor ", name);
    const SafetensorsEntry& e = weights.entry(name);
    if (e.shape != p.info.global_shape)
      input_error("import: ", name, " in ", weights.file_of(name), " has shape ", shape_text(e.shape), ", config.json's ",
                  "sizes give ", shape_text(p.info.global_shape));
    const std::vector<float> v = weights.read(name);
    std::memcpy(params.host_values() + p.offset, v.data(), v.size() * sizeof(float));
    used.insert(name);
    ++count;
  }
  for (const std::string& name : weights.names()) {
    if (used.count(name)) continue;
    // A tied head saved anyway is the embedding itself; old checkpoints carry RoPE's buffer.
    if (name == "lm_head.weight" && c.model.tie_embeddings) continue;
    if (name.size() > 23 && name.compare(name.size() - 23, 23, ".rotary_emb.inv_freq") == 0) continue;
    const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    input_error("import: ", weights.file_of(name), " holds ", name, ", which ringtrain's model has no place for",
                bias ? " (biases are not supported)" : "");
  }
  params.push_values();

  // Step 0, zero moments: resuming this file is a fresh AdamW on these weights. The gradient
  // buffer is all zeros (finalize zeroes it, nothing ran) and serves as both moments, so a large
  // model needs no two more copies of its size.
  const MomentsView moments{params.shard_ranges(0), params.grads(), params.grads()};
  const std::filesystem::path parent = std::filesystem::path(out_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_checkpoint_file(out_path, c, mesh, params, moments, CheckpointState{});
  const std::string yaml = yaml_path_of(out_path);
  std::ofstream(yaml) << dump_config(c);
  log << "imported " << count << " tensors of " << hf_dir << " (" << hf.model_type << ", " << c.model.n_layers
      << " layers, d_model " << c.model.d_model << ", heads " << c.model.n_heads << "/" << c.model.n_kv_heads
      << ", rope " << c.model.rope_scaling << ") to " << out_path << " (step 0) and its config " << yaml << "\n";
}

}  // namespace ringtrain
