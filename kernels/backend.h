// Backend: every operation a training step issues, on one compute device. The model, the
// parallel layers and the optimizer call these and nothing device-specific, so the same step
// runs on the CPU (kernels/cpu, OpenBLAS) and on a CUDA device, real or emulated
// (kernels/cuda, through the GPU layer in src/device).
//
// Pointers are memory of the backend's device (host memory for the CPU backend): buffers come
// from alloc(), host data moves with upload()/download(). Work is issued in order on the
// backend's compute stream; only upload(), download() and synchronize() wait for it.
// Shapes and semantics are those of the CPU headers each group names.
//
// Precision (train.precision): fp32 computes everything in fp32. bf16 is mixed precision as
// autocast does it: the GEMM and attention operands are rounded to bf16 (tensor cores, fp32
// accumulation); norms, softmax statistics, residuals, gradients, master weights and the
// optimizer stay fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/attention_probs.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "src/core/error.h"
#include "src/core/tensor.h"

namespace ringtrain {

enum class Precision { kF32, kBF16 };

class Backend {
 public:
  explicit Backend(Precision precision) : precision_(precision) {}
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual Device device() const = 0;
  virtual std::string describe() const = 0;  // "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)", ...
  bool on_host() const { return device().kind == DeviceKind::kCpu; }
  Precision precision() const { return precision_; }

  // ---- memory ----
  Tensor alloc(int64_t n, DType dtype = DType::kF32) const { return Tensor::empty({n}, dtype, device()); }
  // host -> device; the host buffer may be reused as soon as this returns.
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  // device -> host; waits for the work issued before it.
  virtual void download(void* host, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device -> device
  virtual void synchronize() = 0;
  // Bytes of device memory held by tensors now / at most since the last reset (host memory for
  // the CPU backend).
  virtual size_t memory_in_use() const = 0;
  virtual size_t memory_peak() const = 0;
  virtual void reset_memory_peak() = 0;

  // ---- elementwise ----
  virtual void fill(float* x, float value, int64_t n) = 0;
  virtual void add(float* dst, const float* src, int64_t n) = 0;  // dst += src
  virtual void scale(float* x, float s, int64_t n) = 0;
  // src[A][B][C] -> dst[B][A][C]: the Ulysses all-to-all packing.
  virtual void swap01(const float* src, float* dst, int64_t A, int64_t B, int64_t C) = 0;
  // Ulysses beyond the kv heads: each all-to-all destination gets the kv heads its query heads
  // read, some heads duplicated. map: device int32[dst_heads] (gather) / [src_heads] (sum).
  //   gather_heads: dst[r][j][:] = src[r][map[j]][:]            (src [rows][src_heads][d])
  //   sum_heads:    dst[r][h][:] = sum over j with map[j] == h of src[r][j][:], j ascending
  virtual void gather_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                            const int32_t* map) = 0;
  virtual void sum_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                         const int32_t* map) = 0;
  // *out = sum of x[i]^2 in double, out in device memory (the optimizer issues one per
  // parameter and downloads them together: one wait for the gradient norm).
  virtual void sum_squares(const float* x, int64_t n, double* out) = 0;
  // SwiGLU (kernels/cpu/ops_cpu.h)
  virtual void swiglu_forward(const float* gate, const float* up, float* h, int64_t n) = 0;
  virtual void swiglu_backward(const float* dh, const float* gate, const float* up, float* dgate, float* dup,
                               int64_t n) = 0;

  // ---- linear layers (kernels/cpu/ops_cpu.h GEMM), operands in the backend's precision ----
  // y[n, out] = x[n, in] W[out, in]^T
  virtual void linear_forward(const float* x, const float* w, float* y, int n, int in, int out) = 0;
  // dx[n, in] (= or += when accumulate_dx) dy W;  dw[out, in] += dy^T x.  dx may be null.
  virtual void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int n,
                               int in, int out, bool accumulate_dx) = 0;

  // ---- rows ----
  virtual void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd) = 0;
  virtual void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w,
                                const float* rstd, float* dx, float* dw) = 0;  // dw +=
  // a.positions: device int32[tokens]
  virtual void rope_forward(const RopeArgs& a, float* x) = 0;
  virtual void rope_backward(const RopeArgs& a, float* dx) = 0;
  // ids: device int32[tokens]; dtable +=
  virtual void embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out) = 0;
  virtual void embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout,
                                  float* dtable) = 0;
  // kernels/cross_entropy.h; targets: device int32[rows]
  virtual void cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max) = 0;
  virtual void cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                                    float* row_sumexp) = 0;
  virtual void cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                                    float* target_logit) = 0;
  // row_lse = m + log(s); row_loss = target < 0 ? 0 : row_lse - t
  virtual void cross_entropy_finish(int rows, const float* row_max, const float* row_sumexp,
                                    const float* target_logit, const int32_t* targets, float* row_loss,
                                    float* row_lse) = 0;
  virtual void cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                                      const int32_t* targets, float scale) = 0;
  // pairs[2r] = max logit of the row in this shard, pairs[2r+1] = its vocabulary id (float)
  virtual void argmax_pairs(const CrossEntropyArgs& a, const float* logits, float* pairs) = 0;

  // ---- attention (kernels/attention.h; positions are device arrays) ----
  virtual void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                 float* out, float* lse) = 0;
  virtual void attention_backward_delta(const AttentionArgs& a, const float* out, const float* dout,
                                        float* delta) = 0;
  // dq, dk, dv +=
  virtual void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                  const float* dout, const float* lse, const float* delta, float* dq, float* dk,
                                  float* dv) = 0;
  virtual void attention_merge(int b, int s_q, int h, int d, float* out, float* lse, const float* out_b,
                               const float* lse_b) = 0;
  // kernels/attention_probs.h: rows, pooled (each may be null) and stats +=; p's row_slot and
  // spans are device arrays.
  virtual void attention_probs(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                               const float* lse, float* rows, float* pooled, float* stats) = 0;

  // ---- optimizer ----
  virtual void adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v, int64_t n) = 0;
  // Weights were overwritten by something other than adamw_step or upload (ZeRO-3 gathers each
  // layer's weights into a reused buffer): copies a backend keeps of weights are stale.
  virtual void weights_changed() {}
  // ZeRO-3 in bf16 (src/train/optimizer.h) gathers weights as bf16: a GEMM weight whose address
  // lies in [begin, begin + bytes) is bf16 already and is multiplied as it is (no copy). Only
  // GEMM weights are read from such a range. bytes 0 forgets the range starting at begin.
  // Backends that compute in fp32 or on the host keep no such ranges (an error).
  virtual void bf16_weights_at(const void*, size_t) {
    RT_CHECK(false, describe(), " multiplies no bf16 weights in place (ZeRO-3's bf16 gathers are a GPU's)");
  }
  // y[i] = x[i] rounded to bf16 (to nearest, ties to even); y is bf16 (the same backends).
  virtual void cast_to_bf16(const float*, void*, int64_t) {
    RT_CHECK(false, describe(), " casts no buffers to bf16 (ZeRO-3's bf16 gathers are a GPU's)");
  }

 private:
  Precision precision_;
};

std::unique_ptr<Backend> make_cpu_backend(Precision precision);

// Resizes t to n elements of `dtype` on the backend's device when its size differs (contents
// unspecified); a steady-state step calls it with the sizes it already has and allocates
// nothing.
void ensure_buffer(const Backend& be, Tensor& t, int64_t n, DType dtype = DType::kF32);

}  // namespace ringtrain
