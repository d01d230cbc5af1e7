// The rounding model of the bf16 flash attention (docs/GPU-EMULATION.md, "Error of the 16-bit
// flash attention") carried through a whole training step by Monte Carlo: the CPU backend in bf16
// precision (the same bf16 operands as the CUDA backend: GEMM inputs, q, k, v and dout; fp32
// arithmetic) whose attention adds, per element, a normal error of the model's standard
// deviation for the roundings that only the flash kernels make (P and out in the forward, P and
// dS in the backward). The spread of the loss and of the updated weights over a few seeds is the
// model's prediction of how far the CUDA step may be from the CPU step; out's error reaches the
// gradients through delta by itself, so the backward adds only the rest.
#pragma once

#include <cuda_bf16.h>
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "kernels/attention_reference.h"
#include "kernels/backend.h"
#include "kernels/gpu_runtime.h"
#include "src/core/mpi_communicator.h"

namespace ringtrain::test {

class RoundingNoiseBackend final : public Backend {
 public:
  RoundingNoiseBackend(std::unique_ptr<Backend> cpu, uint64_t seed)
      : Backend(cpu->precision()), cpu_(std::move(cpu)), rng_(seed) {}

  Device device() const override { return cpu_->device(); }
  std::string describe() const override { return "cpu with the bf16 flash rounding model"; }
  void upload(void* d, const void* h, size_t n) override { cpu_->upload(d, h, n); }
  void download(void* h, const void* s, size_t n) override { cpu_->download(h, s, n); }
  void copy(void* d, const void* s, size_t n) override { cpu_->copy(d, s, n); }
  void synchronize() override { cpu_->synchronize(); }
  size_t memory_in_use() const override { return cpu_->memory_in_use(); }
  size_t memory_peak() const override { return cpu_->memory_peak(); }
  void reset_memory_peak() override { cpu_->reset_memory_peak(); }
  void fill(float* x, float v, int64_t n) override { cpu_->fill(x, v, n); }
  void add(float* d, const float* s, int64_t n) override { cpu_->add(d, s, n); }
  void scale(float* x, float s, int64_t n) override { cpu_->scale(x, s, n); }
  void swap01(const float* s, float* d, int64_t A, int64_t B, int64_t C) override { cpu_->swap01(s, d, A, B, C); }
  void gather_heads(const float* s, float* d, int64_t rows, int sh, int dh, int hd, const int32_t* map) override {
    cpu_->gather_heads(s, d, rows, sh, dh, hd, map);
  }
  void sum_heads(const float* s, float* d, int64_t rows, int sh, int dh, int hd, const int32_t* map) override {
    cpu_->sum_heads(s, d, rows, sh, dh, hd, map);
  }
  void sum_squares(const float* x, int64_t n, double* out) override { cpu_->sum_squares(x, n, out); }
  void swiglu_forward(const float* g, const float* u, float* h, int64_t n) override { cpu_->swiglu_forward(g, u, h, n); }
  void swiglu_backward(const float* dh, const float* g, const float* u, float* dg, float* du, int64_t n) override {
    cpu_->swiglu_backward(dh, g, u, dg, du, n);
  }
  void linear_forward(const float* x, const float* w, float* y, int n, int in, int out) override {
    cpu_->linear_forward(x, w, y, n, in, out);
  }
  void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int n, int in, int out,
                       bool acc) override {
    cpu_->linear_backward(dy, x, w, dx, dw, n, in, out, acc);
  }
  void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd) override {
    cpu_->rmsnorm_forward(a, x, w, y, rstd);
  }
  void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w, const float* rstd,
                        float* dx, float* dw) override {
    cpu_->rmsnorm_backward(a, dy, x, w, rstd, dx, dw);
  }
  void rope_forward(const RopeArgs& a, float* x) override { cpu_->rope_forward(a, x); }
  void rope_backward(const RopeArgs& a, float* dx) override { cpu_->rope_backward(a, dx); }
  void embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* t, float* out) override {
    cpu_->embedding_forward(a, ids, t, out);
  }
  void embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout, float* dt) override {
    cpu_->embedding_backward(a, ids, dout, dt);
  }
  void cross_entropy_max(const CrossEntropyArgs& a, const float* l, float* m) override {
    cpu_->cross_entropy_max(a, l, m);
  }
  void cross_entropy_sumexp(const CrossEntropyArgs& a, const float* l, const float* m, float* s) override {
    cpu_->cross_entropy_sumexp(a, l, m, s);
  }
  void cross_entropy_target(const CrossEntropyArgs& a, const float* l, const int32_t* t, float* tl) override {
    cpu_->cross_entropy_target(a, l, t, tl);
  }
  void cross_entropy_finish(int rows, const float* m, const float* s, const float* t, const int32_t* tg, float* loss,
                            float* lse) override {
    cpu_->cross_entropy_finish(rows, m, s, t, tg, loss, lse);
  }
  void cross_entropy_backward(const CrossEntropyArgs& a, float* l, const float* lse, const int32_t* t,
                              float s) override {
    cpu_->cross_entropy_backward(a, l, lse, t, s);
  }
  void argmax_pairs(const CrossEntropyArgs& a, const float* l, float* p) override { cpu_->argmax_pairs(a, l, p); }
  void attention_backward_delta(const AttentionArgs& a, const float* out, const float* dout, float* delta) override {
    cpu_->attention_backward_delta(a, out, dout, delta);
  }
  void attention_merge(int b, int s_q, int h, int d, float* out, float* lse, const float* ob,
                       const float* lb) override {
    cpu_->attention_merge(b, s_q, h, d, out, lse, ob, lb);
  }
  void attention_probs(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                       const float* lse, float* rows, float* pooled, float* stats) override {
    cpu_->attention_probs(a, p, q, k, lse, rows, pooled, stats);
  }
  void adamw_step(const AdamWArgs& a, float* p, const float* g, float* m, float* v, int64_t n) override {
    cpu_->adamw_step(a, p, g, m, v, n);
  }

  void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                         float* lse) override {
    cpu_->attention_forward(a, q, k, v, out, lse);
    const int64_t nq = q_elems(a), nk = kv_elems(a);
    std::vector<double> qd = bf16_values(q, nq), kd = bf16_values(k, nk), vd = bf16_values(v, nk);
    std::vector<double> so(static_cast<size_t>(nq));
    attention_rounding_sigma(a, 0x1p-8, qd.data(), kd.data(), vd.data(), nullptr, so.data(), nullptr, nullptr, nullptr);
    perturb(out, so);
  }
  void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout,
                          const float* lse, const float* delta, float* dq, float* dk, float* dv) override {
    cpu_->attention_backward(a, q, k, v, dout, lse, delta, dq, dk, dv);
    const int64_t nq = q_elems(a), nk = kv_elems(a);
    std::vector<double> qd = bf16_values(q, nq), kd = bf16_values(k, nk), vd = bf16_values(v, nk);
    std::vector<double> gd = bf16_values(dout, nq);
    std::vector<double> sq(static_cast<size_t>(nq)), sk(static_cast<size_t>(nk)), sv(static_cast<size_t>(nk));
    attention_rounding_sigma(a, 0x1p-8, qd.data(), kd.data(), vd.data(), gd.data(), nullptr, sq.data(), sk.data(),
                             sv.data(), /*delta_term=*/false);
    perturb(dq, sq);
    perturb(dk, sk);
    perturb(dv, sv);
  }

 private:
  static int64_t q_elems(const AttentionArgs& a) { return static_cast<int64_t>(a.b) * a.s_q * a.h * a.d; }
  static int64_t kv_elems(const AttentionArgs& a) { return static_cast<int64_t>(a.b) * a.s_k * a.h_kv * a.d; }
  static std::vector<double> bf16_values(const float* x, int64_t n) {
    std::vector<double> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = __bfloat162float(__float2bfloat16(x[i]));
    return out;
  }
  void perturb(float* x, const std::vector<double>& sigma) {
    std::normal_distribution<double> normal;
    for (size_t i = 0; i < sigma.size(); ++i) x[i] = static_cast<float>(x[i] + sigma[i] * normal(rng_));
  }

  std::unique_ptr<Backend> cpu_;
  std::mt19937_64 rng_;
};

// A GPU runtime whose "device" is the CPU with the rounding model (RoundingNoiseBackend) and whose
// communicators are the host MPI ones: lets a test run the Trainer's own step under the model.
// Each backend made gets the next seed.
inline uint64_t g_rounding_noise_seed = 1;
inline const GpuRuntime* rounding_noise_runtime() {
  static const GpuRuntime rt = [] {
    GpuRuntime r;
    r.emulated = true;
    r.device_count = [] { return 1; };
    r.pci_id = [](int, int id[3]) { id[0] = id[1] = id[2] = 0; };
    r.make_backend = [](Precision p, int) -> std::unique_ptr<Backend> {
      return std::make_unique<RoundingNoiseBackend>(make_cpu_backend(p), g_rounding_noise_seed++);
    };
    r.make_communicator = [](MPI_Comm comm, Backend&, bool) { return make_mpi_communicator(comm); };
    return r;
  }();
  return &rt;
}

}  // namespace ringtrain::test
