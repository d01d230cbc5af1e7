// ctest-ranks: 2 3 4
// The bf16 flash kernels (tensor cores; head dim 64 and 128) inside every context-parallel
// layout: ring at cp = 2, 3, 4, Ulysses 2, hybrid 2 x 2, tp = 2 with sequence parallelism and
// dp = 2, over NCCL and staged MPI, at head dim 64 with 4 query heads per kv head and head dim 128
// with one. One training step on the CUDA backend (the emulated device in CI) against the CPU
// step on one rank with the same bf16 operands (GEMM inputs, q, k, v, dout rounded as the CUDA
// backend rounds them; fp32 arithmetic): the loss and the weight update must lie within
// kRoundingSigmas standard deviations of what the rounding model of the flash kernels predicts
// (tests/gpu/rounding_noise_backend.h: the model carried through the same step by Monte Carlo),
// plus the fp32 tolerance of two layouts. Catches a flash kernel fed the wrong block, lse or
// delta by a ring step, a Ulysses or tensor-parallel head split that the bf16 path handles
// differently from the fp32 one, and dK/dV of a ring step lost or added twice. ZeRO-3 (its
// units gathered in bf16, at cp 2, 3, 4 and dp 2, also kept for the backward) is held to the
// same bound: its GEMMs must multiply the same bf16 weights; and over three steps it must train
// the numbers of ZeRO-0 on the same device layout within the fp32 layout tolerance (the bf16
// operands are the same; only the sums' order differs), which catches an RMSNorm weight read
// rounded to bf16 (exactly 1 at the first step, not after it) or a unit's bf16 copy stale.
// Under the sanitizer run (scripts/sanitize ci: memory errors, not numbers) each layout runs once
// per communicator instead of once per communicator and head dim, and ZeRO-3's two variants one
// communicator each.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "gpu_test.h"
#include "kernels/cuda/backend_cuda.h"
#include "layout_runs.h"
#include "rounding_noise_backend.h"

using namespace ringtrain;

namespace {

// The AdamW step is made linear in the gradient so that the weights after it compare gradients:
// at step 1 the update is lr g / (|g| + eps); with eps = 1 and lr = 1 it is g to within |g|
// relative (no clipping, no decay). seq_len 72: the zigzag of cp = 2, 3, 4 (2 cp chunks) and the
// passkey prompt (64 tokens at least).
constexpr const char* kBase = R"(
device: cpu
run: {seed: 11, threads: 1}
model: {vocab_size: 128, n_layers: 2, d_ff: 128}
train: {seq_len: 72, micro_batch: 2, grad_accum: 1, steps: 1, precision: bf16, lr: 1.0, min_lr: 0.0, warmup_steps: 0, grad_clip: 0.0, weight_decay: 0.0, eps: 1.0, eval_batches: 1}
data: {task: passkey, passkey_digits: 2}
log: {every: 100, tensorboard: false}
)";

// The Monte Carlo seeds of the model's spread: the bounds' standard deviations are estimated
// from this many samples (relative error of a variance about sqrt(2 / 8) for one number, far
// below the factor kRoundingSigmas allows).
constexpr int kModelSeeds = 8;

struct OneStep {
  double loss = 0;
  std::map<std::string, std::vector<float>> before, after;
  std::string device;
};

OneStep one_step(MPI_Comm comm, const std::vector<std::string>& overrides) {
  std::vector<std::string> o = overrides;
  int n = 0;
  MPI_Comm_size(comm, &n);
  o.push_back("run.out_dir=/tmp/ringtrain-test-layouts-bf16/" + std::to_string(n) + "-" +
              std::to_string(world_rank()));
  const Config c = parse_config(kBase, "bf16 layout run", o);
  Mesh mesh(comm, MeshShape{c.parallel.dp, c.parallel.cp, c.parallel.tp, c.parallel.ulysses_degree});
  Trainer t(c, mesh);
  OneStep r;
  r.before = test::global_weights(t.model(), mesh);
  r.loss = t.step().loss;
  r.after = test::global_weights(t.model(), mesh);
  r.device = t.compute().describe();
  return r;
}

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(s);
}

// What the CUDA step is compared with: the CPU step on one rank and the model's standard
// deviations of the loss and of each weight update (norm over the tensor).
struct Expected {
  OneStep cpu;
  double loss_sigma = 0;
  std::map<std::string, double> update_sigma;
};

Expected expected(const std::vector<std::string>& model) {
  Expected e;
  e.cpu = one_step(MPI_COMM_SELF, model);
  std::vector<std::string> noisy = model;
  noisy.push_back("device=cuda");
  const GpuRuntime* real = gpu_runtime();
  set_gpu_runtime(test::rounding_noise_runtime());
  // The seeds are dealt out over the ranks and their squared deviations summed over the world
  // (a tensor's sum at index 1 + its position in the ordered map; the loss's at 0).
  std::vector<double> sums(1 + e.cpu.after.size(), 0.0);
  for (int s = world_rank(); s < kModelSeeds; s += world_size()) {
    test::g_rounding_noise_seed = 1000 + static_cast<uint64_t>(s);
    const OneStep m = one_step(MPI_COMM_SELF, noisy);
    sums[0] += (m.loss - e.cpu.loss) * (m.loss - e.cpu.loss);
    size_t i = 1;
    for (const auto& [name, w] : e.cpu.after) {
      const double d = distance(m.after.at(name), w);
      sums[i++] += d * d;
    }
  }
  set_gpu_runtime(real);
  MPI_Allreduce(MPI_IN_PLACE, sums.data(), static_cast<int>(sums.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  e.loss_sigma = std::sqrt(sums[0] / kModelSeeds);
  size_t i = 1;
  for (const auto& [name, w] : e.cpu.after) e.update_sigma[name] = std::sqrt(sums[i++] / kModelSeeds);
  return e;
}

// Returns the largest |error| / sigma seen (printed: about 1 when the model describes the step).
double expect_within_model(const OneStep& dev, const Expected& e, const std::string& what) {
  const test::Tolerance f32 = test::kF32Layout;
  const double loss_err = std::fabs(dev.loss - e.cpu.loss);
  EXPECT_LE(loss_err, test::kRoundingSigmas * e.loss_sigma + f32.atol + f32.rtol * std::fabs(e.cpu.loss))
      << what << ": loss " << dev.loss << " cpu " << e.cpu.loss << " model sigma " << e.loss_sigma;
  double worst = loss_err / e.loss_sigma;
  for (const auto& [name, w1] : e.cpu.after) {
    const std::vector<float>& w0 = e.cpu.before.at(name);
    // fp32 floor: the update's fp32 layout tolerance, and each weight rounded to fp32 once per run.
    const double floor = f32.rtol * distance(w1, w0) + 0x1p-23 * distance(w1, std::vector<float>(w1.size(), 0.0f));
    const double err = distance(dev.after.at(name), w1), sigma = e.update_sigma.at(name);
    EXPECT_LE(err, test::kRoundingSigmas * sigma + floor)
        << what << ": update of " << name << " off by " << err << " (norm), model sigma " << sigma;
    worst = std::fmax(worst, err / sigma);
  }
  return worst;
}

}  // namespace

TEST(CudaLayoutsBf16, FlashAttentionInEveryLayoutFollowsTheRoundingModel) {
  register_cuda_runtime();
  const int world = world_size();
  std::vector<std::vector<std::string>> layouts;
  auto add = [&](int dp, int cp, int tp, std::vector<std::string> extra = {}) {
    if (dp * cp * tp == world) layouts.push_back(test::layout(dp, cp, tp, 2, std::move(extra)));
  };
  add(1, 2, 1);
  add(1, 2, 1, {"parallel.cp_mode=ulysses", "parallel.ulysses_degree=2"});
  add(1, 1, 2, {"parallel.sequence_parallel=true"});
  add(2, 1, 1);
  add(1, 3, 1);
  add(1, 4, 1);
  add(1, 4, 1, {"parallel.cp_mode=hybrid", "parallel.ulysses_degree=2"});
  add(1, 2, 1, {"parallel.zero=3"});
  add(2, 1, 1, {"parallel.zero=3", "parallel.zero3_keep_for_backward=true"});
  add(1, 3, 1, {"parallel.zero=3"});  // pieces that split the RMSNorm weights unevenly
  add(1, 4, 1, {"parallel.zero=3", "parallel.zero3_keep_for_backward=true"});
  ASSERT_FALSE(layouts.empty());

  // Head dim 64 with 4 query heads per kv head (2 kv heads: tp = 2 and Ulysses 2 split them),
  // head dim 128 with one.
  const std::vector<std::vector<std::string>> models = {
      {"model.d_model=512", "model.n_heads=8", "model.n_kv_heads=2"},
      {"model.d_model=256", "model.n_heads=2", "model.n_kv_heads=2"}};
  // Under the sanitizer run (RINGTRAIN_TEST_UNDER_SANITIZER, which looks for memory errors, not
  // numbers) each pair of layout and communicator runs once, the two head dims taking turns.
  for (size_t m = 0; m < models.size(); ++m) {
    const std::vector<std::string>& model = models[m];
    const auto t0 = std::chrono::steady_clock::now();
    const Expected e = expected(model);
    const double model_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t l = 0; l < layouts.size(); ++l)
      for (size_t c = 0; c < 2; ++c) {
        if (test::under_sanitizer() && (l + m + c) % 2 != 0) continue;
        const auto& o = layouts[l];
        const char* comm = c == 0 ? "nccl" : "staged";
        const std::string what = std::string("cuda/") + comm + " " + test::layout_name(test::with(model, o));
        SCOPED_TRACE(what);
        const auto t1 = std::chrono::steady_clock::now();
        const OneStep dev = one_step(MPI_COMM_WORLD, test::with(test::with(model, o), {"device=cuda",
                                                                            std::string("parallel.device_comm=") + comm}));
        EXPECT_NE(dev.device.find(std::string(comm) == "nccl" ? "via NCCL" : "via staged MPI"), std::string::npos)
            << dev.device;  // never a silent CPU run
        const double worst = expect_within_model(dev, e, what);
        if (world_rank() == 0)
          std::printf("%s: loss %.7f cpu %.7f (sigma %.2e); largest error / sigma %.2f; %.1f s (model %.1f s)\n",
                      what.c_str(), dev.loss, e.cpu.loss, e.loss_sigma, worst,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), model_s);
      }
  }
}

TEST(CudaLayoutsBf16, ZeroThreeGathersInBf16AndTrainsZeroZerosNumbers) {
  register_cuda_runtime();
  const int world = world_size();
  const std::vector<std::string> model = {"model.d_model=512", "model.n_heads=8", "model.n_kv_heads=2",
                                          "train.steps=3", "train.lr=3.0e-3", "train.eps=1.0e-6"};
  const std::vector<std::string> cp = test::layout(1, world, 1, 2, {});
  for (const char* comm : {"nccl", "staged"}) {
    const std::vector<std::string> dev = test::with(test::with(model, cp), {"device=cuda", std::string("parallel.device_comm=") + comm});
    const test::TrainedRun zero0 = test::train(kBase, MPI_COMM_WORLD, dev);
    for (const char* keep : {"false", "true"}) {
      // Under the sanitizer run: NCCL with the units gathered again for the backward, staged MPI
      // with them kept.
      if (test::under_sanitizer() && (std::string(comm) == "nccl") != (std::string(keep) == "false")) continue;
      const std::string what = std::string("cuda/") + comm + " zero 3, keep " + keep + ", cp " + std::to_string(world);
      const test::TrainedRun zero3 = test::train(
          kBase, MPI_COMM_WORLD, test::with(dev, {"parallel.zero=3", std::string("parallel.zero3_keep_for_backward=") + keep}));
      test::expect_same(zero3, zero0, what);
    }
  }
}
