// The CPU backend: the kernels of kernels/cpu on host memory. bf16 precision rounds the GEMM
// and attention operands to bf16 (round to nearest even) into reused scratch and computes in
// fp32, which is what a tensor core does with bf16 inputs and fp32 accumulation.
#include "kernels/backend.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/workspace.h"
#include "src/core/error.h"

namespace ringtrain {

void ensure_buffer(const Backend& be, Tensor& t, int64_t n, DType dtype) {
  if (t.defined() && t.numel() == n && t.dtype() == dtype) return;
  if (be.on_host()) ws::note_workspace_growth();  // the CPU step's allocation test counts these
  t = be.alloc(n, dtype);
}

namespace {

// x rounded to the nearest bf16 (ties to even), kept as fp32.
float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) {  // inf/nan: keep (quiet the nan)
    if (u & 0x007fffffu) u |= 0x00400000u;
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);
  }
  u &= 0xffff0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

class CpuBackend final : public Backend {
 public:
  using Backend::Backend;
  Device device() const override { return cpu(); }
  std::string describe() const override { return "cpu"; }

  void upload(void* dst, const void* host, size_t bytes) override { move(dst, host, bytes); }
  void download(void* host, const void* src, size_t bytes) override { move(host, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { move(dst, src, bytes); }
  void synchronize() override {}
  size_t memory_in_use() const override { return host_bytes_in_use(); }
  size_t memory_peak() const override { return host_bytes_peak(); }
  void reset_memory_peak() override { reset_host_bytes_peak(); }

  void fill(float* x, float value, int64_t n) override { std::fill(x, x + n, value); }
  void add(float* dst, const float* src, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
  }
  void scale(float* x, float s, int64_t n) override { scale_inplace(x, n, s); }
  void swap01(const float* src, float* dst, int64_t A, int64_t B, int64_t C) override {
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < B; ++b)
        std::memcpy(dst + (b * A + a) * C, src + (a * B + b) * C, static_cast<size_t>(C) * sizeof(float));
  }
  void gather_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                    const int32_t* map) override {
    for (int64_t r = 0; r < rows; ++r)
      for (int j = 0; j < dst_heads; ++j)
        std::memcpy(dst + (r * dst_heads + j) * d, src + (r * src_heads + map[j]) * d,
                    static_cast<size_t>(d) * sizeof(float));
  }
  void sum_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                 const int32_t* map) override {
    std::memset(dst, 0, static_cast<size_t>(rows) * dst_heads * d * sizeof(float));
    for (int64_t r = 0; r < rows; ++r)
      for (int j = 0; j < src_heads; ++j) {
        float* o = dst + (r * dst_heads + map[j]) * d;
        const float* x = src + (r * src_heads + j) * d;
        for (int c = 0; c < d; ++c) o[c] += x[c];
      }
  }
  void sum_squares(const float* x, int64_t n, double* out) override { *out = ringtrain::sum_squares(x, n); }
  void swiglu_forward(const float* g, const float* u, float* h, int64_t n) override {
    ringtrain::swiglu_forward(g, u, h, n);
  }
  void swiglu_backward(const float* dh, const float* g, const float* u, float* dg, float* du, int64_t n) override {
    ringtrain::swiglu_backward(dh, g, u, dg, du, n);
  }

  void linear_forward(const float* x, const float* w, float* y, int n, int in, int out) override {
    if (precision() == Precision::kBF16) {
      x = rounded(scratch_a_, x, static_cast<int64_t>(n) * in);
      w = rounded(scratch_b_, w, static_cast<int64_t>(out) * in);
    }
    ringtrain::linear_forward(x, w, y, n, in, out);
  }
  void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int n, int in,
                       int out, bool accumulate_dx) override {
    if (precision() == Precision::kBF16) {
      dy = rounded(scratch_a_, dy, static_cast<int64_t>(n) * out);
      if (dx) ringtrain::linear_backward(dy, nullptr, rounded(scratch_b_, w, static_cast<int64_t>(out) * in), dx,
                                         nullptr, n, in, out, accumulate_dx);
      if (dw) ringtrain::linear_backward(dy, rounded(scratch_b_, x, static_cast<int64_t>(n) * in), nullptr,
                                         nullptr, dw, n, in, out, false);
      return;
    }
    ringtrain::linear_backward(dy, x, w, dx, dw, n, in, out, accumulate_dx);
  }

  void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd) override {
    ringtrain::rmsnorm_forward(a, x, w, y, rstd);
  }
  void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w, const float* rstd,
                        float* dx, float* dw) override {
    ringtrain::rmsnorm_backward(a, dy, x, w, rstd, dx, dw);
  }
  void rope_forward(const RopeArgs& a, float* x) override { ringtrain::rope_forward(a, x); }
  void rope_backward(const RopeArgs& a, float* dx) override { ringtrain::rope_backward(a, dx); }
  void embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out) override {
    ringtrain::embedding_forward(a, ids, table, out);
  }
  void embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout, float* dtable) override {
    ringtrain::embedding_backward(a, ids, dout, dtable);
  }
  void cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max) override {
    ringtrain::cross_entropy_max(a, logits, row_max);
  }
  void cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                            float* row_sumexp) override {
    ringtrain::cross_entropy_sumexp(a, logits, row_max, row_sumexp);
  }
  void cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                            float* target_logit) override {
    ringtrain::cross_entropy_target(a, logits, targets, target_logit);
  }
  void cross_entropy_finish(int rows, const float* m, const float* s, const float* t, const int32_t* targets,
                            float* row_loss, float* row_lse) override {
    for (int r = 0; r < rows; ++r) {
      row_lse[r] = m[r] + std::log(s[r]);
      row_loss[r] = targets[r] < 0 ? 0.0f : row_lse[r] - t[r];
    }
  }
  void cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                              const int32_t* targets, float scale) override {
    ws::ensure_size(row_scale_, static_cast<size_t>(a.rows));
    std::fill(row_scale_.begin(), row_scale_.end(), scale);
    ringtrain::cross_entropy_backward(a, logits, row_lse, targets, row_scale_.data());
  }
  void argmax_pairs(const CrossEntropyArgs& a, const float* logits, float* pairs) override {
    for (int r = 0; r < a.rows; ++r) {
      const float* row = logits + static_cast<int64_t>(r) * a.vocab_local;
      int best = 0;
      for (int j = 1; j < a.vocab_local; ++j)
        if (row[j] > row[best]) best = j;
      pairs[2 * r] = a.vocab_local > 0 ? row[best] : -std::numeric_limits<float>::infinity();
      pairs[2 * r + 1] = static_cast<float>(a.vocab_start + best);
    }
  }

  void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                         float* lse) override {
    if (precision() == Precision::kBF16) {
      q = rounded(scratch_a_, q, q_elems(a));
      k = rounded(scratch_b_, k, kv_elems(a));
      v = rounded(scratch_c_, v, kv_elems(a));
    }
    ringtrain::attention_forward(a, q, k, v, out, lse);
  }
  void attention_backward_delta(const AttentionArgs& a, const float* out, const float* dout, float* delta) override {
    ringtrain::attention_backward_delta(a, out, dout, delta);
  }
  void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout,
                          const float* lse, const float* delta, float* dq, float* dk, float* dv) override {
    if (precision() == Precision::kBF16) {
      q = rounded(scratch_a_, q, q_elems(a));
      k = rounded(scratch_b_, k, kv_elems(a));
      v = rounded(scratch_c_, v, kv_elems(a));
      dout = rounded(scratch_d_, dout, q_elems(a));
    }
    ringtrain::attention_backward(a, q, k, v, dout, lse, delta, dq, dk, dv);
  }
  void attention_merge(int b, int s_q, int h, int d, float* out, float* lse, const float* out_b,
                       const float* lse_b) override {
    ringtrain::attention_merge(b, s_q, h, d, out, lse, out_b, lse_b);
  }
  void attention_probs(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                       const float* lse, float* rows, float* pooled, float* stats) override {
    ringtrain::attention_probs(a, p, q, k, lse, rows, pooled, stats);
  }

  void adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v, int64_t n) override {
    ringtrain::adamw_step(a, param, grad, m, v, n);
  }

 private:
  static void move(void* dst, const void* src, size_t bytes) {
    if (dst != src && bytes > 0) std::memmove(dst, src, bytes);
  }
  static int64_t q_elems(const AttentionArgs& a) { return static_cast<int64_t>(a.b) * a.s_q * a.h * a.d; }
  static int64_t kv_elems(const AttentionArgs& a) { return static_cast<int64_t>(a.b) * a.s_k * a.h_kv * a.d; }
  static const float* rounded(std::vector<float>& buf, const float* x, int64_t n) {
    ws::ensure_size(buf, static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) buf[static_cast<size_t>(i)] = round_bf16(x[i]);
    return buf.data();
  }
  std::vector<float> scratch_a_, scratch_b_, scratch_c_, scratch_d_, row_scale_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(Precision precision) { return std::make_unique<CpuBackend>(precision); }

}  // namespace ringtrain
