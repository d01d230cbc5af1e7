// reference_dump: runs one training step of a small LlamaModel on one rank and writes
// everything the PyTorch reference (tests/reference/llama_reference.py) needs to redo the step
// independently: the weights before the step, the batch, the mean loss, every gradient, the
// global gradient norm and the weights after one AdamW step.
//
//   reference_dump OUT.bin [--config FILE] [--set section.key=value ...]
//
// Without --config the built-in YAML below is used (vocab 256, d_model 64, 2 layers, 4 heads,
// 2 kv heads, d_ff by the Llama rule, seq_len 80, micro_batch 2); --set overrides apply to
// either (tests/reference/CMakeLists.txt lists the cases ctest runs: untied and tied head,
// recompute, multi-query attention over a longer sequence).
//
// File format (little-endian), read by read_dump() in llama_reference.py:
//   "RTREF001"  u32 record count
//   per record: u32 name length, name bytes, u32 dtype (0 f32, 1 i32, 2 f64, 3 u8),
//               u32 ndim, ndim x i64 dims, raw data (row-major)
// Records: "meta" (u8, JSON text of the hyperparameters), "batch.ids", "batch.targets"
// ([b, s] i32, -1 = ignored target), "loss" (f64 scalar, mean over scored targets),
// "grad_norm" (f64 scalar), and per parameter (Hugging Face name, global shape):
// "before/NAME", "grad/NAME", "after/NAME" (f32).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <mpi.h>

#include "parallel/mesh.h"
#include "src/config/config.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "src/model/llama.h"
#include "src/train/compute.h"
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
#include "kernels/cuda/backend_cuda.h"
#include "tests/gpu/rounding_noise_backend.h"
#endif
#include "src/train/optimizer.h"

namespace ringtrain {
namespace {

// The model of the PyTorch reference check. seq_len 80 spans two key tiles of the CPU attention
// kernel (kAttnTileK = 64), the second partial, so the online softmax merges across blocks.
// init_std is larger than the training default so
// that attention logits are O(1) (q.k / sqrt(head_dim) ~ 64 * init_std^2 * head_dim / 4):
// with 0.02 the attention would be nearly uniform and a wrong RoPE or mask would barely move
// the loss. grad_clip 0: the reference applies no clipping.
constexpr const char* kConfig = R"(device: cpu
run:
  name: reference
  out_dir: runs/reference
  seed: 20261128
  threads: 1
model:
  vocab_size: 256
  d_model: 64
  n_layers: 2
  n_heads: 4
  n_kv_heads: 2
  d_ff: 0
  rope_theta: 10000
  norm_eps: 1.0e-5
  tie_embeddings: false
  init_std: 0.1
parallel:
  dp: 1
  cp: 1
  tp: 1
train:
  seq_len: 80
  micro_batch: 2
  grad_accum: 1
  steps: 1
  lr: 1.0e-3
  warmup_steps: 0
  schedule: constant
  weight_decay: 0.1
  beta1: 0.9
  beta2: 0.95
  eps: 1.0e-8
  grad_clip: 0
  precision: fp32
data:
  task: passkey  # not read: the batch is built here
checkpoint:
  dir: ""
  resume: none
log:
  every: 1
  progress: never
  tensorboard: false
)";

// splitmix64: a portable generator, so the batch does not depend on the standard library.
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

enum class DumpType : uint32_t { kF32 = 0, kI32 = 1, kF64 = 2, kU8 = 3 };

class DumpWriter {
 public:
  void add(const std::string& name, DumpType type, const std::vector<int64_t>& dims, const void* data,
           size_t bytes) {
    put_u32(static_cast<uint32_t>(name.size()));
    body_.write(name.data(), static_cast<std::streamsize>(name.size()));
    put_u32(static_cast<uint32_t>(type));
    put_u32(static_cast<uint32_t>(dims.size()));
    for (int64_t d : dims) body_.write(reinterpret_cast<const char*>(&d), sizeof d);
    body_.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    ++count_;
  }
  void save(const std::string& path) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    RT_INPUT_CHECK(f.good(), "cannot write ", path);
    f.write("RTREF001", 8);
    const uint32_t n = count_;
    f.write(reinterpret_cast<const char*>(&n), sizeof n);
    const std::string body = body_.str();
    f.write(body.data(), static_cast<std::streamsize>(body.size()));
    RT_INPUT_CHECK(f.good(), "failed writing ", path);
  }

 private:
  void put_u32(uint32_t v) { body_.write(reinterpret_cast<const char*>(&v), sizeof v); }
  std::ostringstream body_;
  uint32_t count_ = 0;
};

void dump_params(DumpWriter& w, Backend& be, const ParamStore& store, const std::string& prefix, bool grads) {
  std::vector<float> host(static_cast<size_t>(store.size()));  // the flat buffer, from the device
  be.download(host.data(), grads ? store.grads() : store.values(), host.size() * sizeof(float));
  for (const Param& p : store.params()) {
    RT_CHECK(p.local_shape == p.info.global_shape, "reference_dump runs on one rank: ", p.info.name,
             " must be unsharded");
    w.add(prefix + p.info.name, DumpType::kF32, p.info.global_shape, host.data() + p.offset,
          static_cast<size_t>(p.numel) * sizeof(float));
  }
}

struct Gradients {
  double loss = 0;
  std::vector<float> flat;
};

// One forward/backward of `model` from the weights `before` (flat) on `batch`.
Gradients gradients(const Config& config, Mesh& mesh, Backend& be, const TensorGroups& groups,
                    const std::vector<float>& before, const LocalBatch& batch, int64_t scored) {
  LlamaModel model(config, mesh, be, groups);
  std::copy(before.begin(), before.end(), model.params().host_values());
  model.params().push_values();
  Optimizer opt(config, mesh, be, groups, model.params(), model.tp_partial_params());
  model.params().zero_grads();
  Gradients g;
  g.loss = model.forward_backward(batch, static_cast<float>(1.0 / static_cast<double>(scored)),
                                  [&](int first, int last) { opt.grads_ready(first, last, true); }) /
           static_cast<double>(scored);
  opt.finish_gradients();
  g.flat.resize(static_cast<size_t>(model.params().size()));
  be.download(g.flat.data(), model.params().grads(), g.flat.size() * sizeof(float));
  return g;
}

#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
// bf16 on the CUDA backend: the rounding model of the bf16 flash kernels carried through this
// step (tests/gpu/rounding_noise_backend.h): the standard deviation of the loss and of each
// gradient tensor (as a norm) around the CPU step on the same bf16 operands, over kSeeds draws.
// The reference widens its bounds by these (llama_reference.py, precision bf16).
void dump_model_spread(DumpWriter& w, const Config& config, Mesh& mesh, const ParamStore& store,
                       const std::vector<float>& before, const LocalBatch& batch, int64_t scored) {
  constexpr int kSeeds = 8;
  const std::unique_ptr<Backend> cpu = make_cpu_backend(Precision::kBF16);
  const Gradients center = gradients(config, mesh, *cpu, mesh.host_groups(), before, batch, scored);
  double loss_var = 0;
  std::vector<double> grad_var(store.params().size(), 0.0);
  for (int k = 0; k < kSeeds; ++k) {
    test::RoundingNoiseBackend noisy(make_cpu_backend(Precision::kBF16), 1000 + static_cast<uint64_t>(k));
    const Gradients g = gradients(config, mesh, noisy, mesh.host_groups(), before, batch, scored);
    loss_var += (g.loss - center.loss) * (g.loss - center.loss) / kSeeds;
    for (size_t i = 0; i < store.params().size(); ++i) {
      const Param& p = store.params()[i];
      for (int64_t e = p.offset; e < p.offset + p.numel; ++e) {
        const double d = static_cast<double>(g.flat[static_cast<size_t>(e)]) - center.flat[static_cast<size_t>(e)];
        grad_var[i] += d * d / kSeeds;
      }
    }
  }
  const double loss_sigma = std::sqrt(loss_var);
  w.add("model_sigma/loss", DumpType::kF64, {}, &loss_sigma, sizeof loss_sigma);
  for (size_t i = 0; i < store.params().size(); ++i) {
    const double sigma = std::sqrt(grad_var[i]);
    w.add("model_sigma/grad/" + store.params()[i].info.name, DumpType::kF64, {}, &sigma, sizeof sigma);
  }
}
#endif

int run(int argc, char** argv) {
  std::string out, config_path;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--set" || a == "--config") && i + 1 < argc) {
      (a == "--set" ? overrides.emplace_back(argv[++i]) : config_path = argv[++i]);
    } else if (a.rfind("--", 0) != 0 && out.empty()) {
      out = a;
    } else {
      input_error("usage: reference_dump OUT.bin [--config FILE] [--set section.key=value ...] (got '", a, "')");
    }
  }
  RT_INPUT_CHECK(!out.empty(), "usage: reference_dump OUT.bin [--config FILE] [--set section.key=value ...]");
  const Config config = config_path.empty() ? parse_config(kConfig, "reference_dump built-in config", overrides)
                                            : load_config(config_path, overrides);
  RT_INPUT_CHECK(world_size() == 1, "reference_dump runs on one rank");
  validate_for_world(config, 1);

  Mesh mesh(MPI_COMM_WORLD, MeshShape{});
  Compute compute(config, mesh);  // device: cpu, or cuda (a real or the emulated GPU)
  Backend& be = compute.backend();
  LlamaModel model(config, mesh, be, compute.groups());
  model.init_weights(config.run.seed);
  // RMSNorm weights start at exactly one, which would hide a norm that ignores its weight or
  // applies it along the wrong axis; perturb them (the reference loads whatever is dumped).
  SplitMix rng{config.run.seed ^ 0x5eedULL};
  for (Param& p : model.params().params())
    if (p.info.global_shape.size() == 1) {
      float* w = model.params().host_values() + p.offset;
      for (int64_t i = 0; i < p.numel; ++i) w[i] = static_cast<float>(1.0 + 0.2 * (rng.uniform() - 0.5));
    }
  model.params().push_values();

  // One deterministic batch: random ids; targets are the next id (the last position random),
  // with a few positions ignored (-1) to exercise ignore_index.
  const int b = config.train.micro_batch, s = config.train.seq_len;
  const int vocab = config.model.vocab_size;
  LocalBatch batch;
  batch.b = b;
  batch.s_local = s;
  batch.ids.resize(static_cast<size_t>(b) * s);
  batch.targets.resize(batch.ids.size());
  batch.answer.assign(batch.ids.size(), 0);
  for (auto& id : batch.ids) id = static_cast<int32_t>(rng.next() % static_cast<uint64_t>(vocab));
  for (int i = 0; i < b; ++i)
    for (int t = 0; t < s; ++t) {
      const size_t r = static_cast<size_t>(i) * s + t;
      batch.targets[r] = t + 1 < s ? batch.ids[r + 1] : static_cast<int32_t>(rng.next() % static_cast<uint64_t>(vocab));
      if (rng.uniform() < 0.1) batch.targets[r] = -1;
    }
  // data.packing = documents: each sample cut into documents of random lengths (1 token
  // upwards, one longer than a kernel tile), RoPE positions restarting in each, no target
  // across a boundary.
  const bool packed = config.data.packing == Packing::kDocuments;
  if (packed) {
    batch.seq_len = s;
    batch.docs.resize(batch.ids.size());
    batch.rope_pos.resize(batch.ids.size());
    for (int i = 0; i < b; ++i) {
      int32_t doc = 0, pos = 0, left = 1 + static_cast<int32_t>(rng.next() % 3);
      for (int t = 0; t < s; ++t, ++pos, --left) {
        if (left == 0) {
          ++doc;
          pos = 0;
          left = doc == 2 ? 70 : 1 + static_cast<int32_t>(rng.next() % 24);
        }
        const size_t r = static_cast<size_t>(i) * s + t;
        batch.docs[r] = doc;
        batch.rope_pos[r] = pos;
        if (left == 1) batch.targets[r] = -1;  // the last token of a document has no target
      }
    }
  }
  int64_t scored = 0;
  for (int32_t t : batch.targets) scored += t >= 0 ? 1 : 0;
  RT_CHECK(scored > 0, "every target ignored");

  DumpWriter w;
  std::ostringstream meta;
  meta.precision(17);
  const ModelConfig& m = config.model;
  const TrainConfig& tc = config.train;
  meta << "{\"vocab_size\": " << m.vocab_size << ", \"d_model\": " << m.d_model << ", \"n_layers\": " << m.n_layers
       << ", \"n_heads\": " << m.n_heads << ", \"n_kv_heads\": " << m.n_kv_heads << ", \"d_ff\": " << m.ffn_dim()
       << ", \"rope_theta\": " << m.rope_theta << ", \"norm_eps\": " << m.norm_eps
       << ", \"tie_embeddings\": " << (m.tie_embeddings ? "true" : "false")
       << ", \"sliding_window\": " << m.sliding_window << ", \"lr\": " << tc.lr
       << ", \"beta1\": " << tc.beta1 << ", \"beta2\": " << tc.beta2 << ", \"eps\": " << tc.eps
       << ", \"weight_decay\": " << tc.weight_decay << ", \"grad_clip\": " << tc.grad_clip
       << ", \"recompute\": " << (tc.recompute ? "true" : "false") << ", \"micro_batch\": " << b
       << ", \"seq_len\": " << s << ", \"seed\": " << config.run.seed << ", \"step\": 1"
       << ", \"precision\": \"" << (tc.precision == TrainPrecision::kBf16 ? "bf16" : "fp32") << "\"}";
  const std::string meta_text = meta.str();
  w.add("meta", DumpType::kU8, {static_cast<int64_t>(meta_text.size())}, meta_text.data(), meta_text.size());
  w.add("batch.ids", DumpType::kI32, {b, s}, batch.ids.data(), batch.ids.size() * sizeof(int32_t));
  w.add("batch.targets", DumpType::kI32, {b, s}, batch.targets.data(), batch.targets.size() * sizeof(int32_t));
  if (packed) {
    w.add("batch.docs", DumpType::kI32, {b, s}, batch.docs.data(), batch.docs.size() * sizeof(int32_t));
    w.add("batch.rope_pos", DumpType::kI32, {b, s}, batch.rope_pos.data(), batch.rope_pos.size() * sizeof(int32_t));
  }
  dump_params(w, be, model.params(), "before/", false);
  if (tc.precision == TrainPrecision::kBf16) {
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
    RT_INPUT_CHECK(config.device == DeviceChoice::kCuda,
                   "reference_dump: train.precision=bf16 is compared on the CUDA backend only (--set device=cuda)");
    std::vector<float> before(static_cast<size_t>(model.params().size()));
    be.download(before.data(), model.params().values(), before.size() * sizeof(float));
    dump_model_spread(w, config, mesh, model.params(), before, batch, scored);
#else
    input_error("reference_dump: train.precision=bf16 needs the CUDA backend (a build with the GPU layer)");
#endif
  }

  Optimizer opt(config, mesh, be, compute.groups(), model.params(), model.tp_partial_params());
  model.params().zero_grads();
  const float loss_scale = static_cast<float>(1.0 / static_cast<double>(scored));
  const double loss_sum = model.forward_backward(
      batch, loss_scale, [&](int first, int last) { opt.grads_ready(first, last, true); });
  const double grad_norm = opt.finish_gradients();
  const double loss = loss_sum / static_cast<double>(scored);
  w.add("loss", DumpType::kF64, {}, &loss, sizeof loss);
  w.add("grad_norm", DumpType::kF64, {}, &grad_norm, sizeof grad_norm);
  dump_params(w, be, model.params(), "grad/", true);
  opt.update(tc.lr, 1);
  dump_params(w, be, model.params(), "after/", false);
  w.save(out);
  std::printf("reference_dump: %s: loss %.7f grad norm %.7f (%lld scored targets, tie_embeddings %s, on %s)\n",
              out.c_str(), loss, grad_norm, static_cast<long long>(scored), m.tie_embeddings ? "true" : "false",
              compute.describe().c_str());
  return 0;
}

}  // namespace
}  // namespace ringtrain

int main(int argc, char** argv) {
#if defined(RINGTRAIN_HAS_CUDA_BACKEND)
  ringtrain::register_cuda_runtime();
#endif
  ringtrain::MpiSession mpi(&argc, &argv);
  return ringtrain::run_guarded([&] { return ringtrain::run(argc, argv); });
}
