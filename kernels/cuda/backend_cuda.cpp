// CudaBackend: every op of kernels/backend.h as kernels of kernels/cuda (ops_cuda.h, the fp32
// attention and the bf16 flash attention) and cuBLASLt GEMMs, issued on one compute stream.
//
// bf16 precision: GEMM operands are cast to bf16 (fp32 accumulate, fp32 output): activations
// into scratch per call, weights once per update into a bf16 copy kept per weight (refreshed
// after adamw_step, an upload or weights_changed(): ZeRO-3's fp32 gathers into reused buffers;
// weights ZeRO-3 gathered in bf16 are multiplied where they landed, bf16_weights_at);
// attention with head dim 64 or 128 runs the bf16 flash kernels (tensor cores), other head
// dims round q/k/v (and dout) to bf16 and run the fp32 kernels, so the same numbers are
// computed either way up to accumulation order. Everything else stays fp32.
#include "kernels/cuda/backend_cuda.h"

#include <mpi.h>

#include <unordered_map>
#include <vector>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/gpu_runtime.h"
#include "kernels/cuda/ops_cuda.h"
#include "src/core/error.h"
#include "src/device/caching_allocator.h"
#include "src/device/nccl_communicator.h"
#include "src/device/staged_mpi_communicator.h"

namespace ringtrain {
namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend(Precision precision, int index) : Backend(precision), index_(index) {
    CUDA_CHECK(gpu::set_device(index));
    gpu::DeviceProps props;
    CUDA_CHECK(gpu::get_device_properties(&props, index));
    name_ = props.name;
    gpu::install_caching_allocator();
    CUDA_CHECK(gpu::stream_create(&stream_));
    gpu::set_caching_allocator_stream(stream_);  // emulation: reused blocks poisoned in stream order
    norm_work_ = Tensor::empty({cuda::kSumSquaresBlocks}, DType::kF64, device());
  }
  ~CudaBackend() override {
    norm_work_ = Tensor();
    for (Tensor* t : {&s16_a_, &s16_b_, &s16_c_, &s16_d_, &s16_o_, &s32_a_, &s32_b_, &s32_c_, &s32_d_, &s32_w_}) *t = Tensor();
    weight_copies_.clear();
    gpu::stream_synchronize(stream_);
    gpu::stream_destroy(stream_);
  }
  gpu::Stream stream() const { return stream_; }

  Device device() const override { return Device{DeviceKind::kCuda, index_}; }
  std::string describe() const override { return "cuda:" + std::to_string(index_) + " (" + name_ + ")"; }

  // Uploads happen at batch boundaries: wait for the stream (a kernel may still read the
  // buffer being replaced), then copy synchronously, so the host buffer is free on return.
  void upload(void* dst, const void* host, size_t bytes) override {
    if (bytes == 0) return;
    // Initialization or a checkpoint may replace weights: then their bf16 copies are stale.
    // Token ids, targets, positions and document ids (every micro-batch) leave them valid.
    const char* lo = static_cast<const char*>(dst);
    for (const auto& [w, c] : weight_copies_) {
      const char* wlo = reinterpret_cast<const char*>(w);
      if (c.bf16.defined() && lo < wlo + c.bf16.numel() * static_cast<int64_t>(sizeof(float)) && wlo < lo + bytes) {
        ++weights_generation_;
        break;
      }
    }
    CUDA_CHECK(gpu::stream_synchronize(stream_));
    CUDA_CHECK(gpu::memcpy(dst, host, bytes, gpu::CopyKind::kHostToDevice));
  }
  void download(void* host, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    CUDA_CHECK(gpu::memcpy_async(host, src, bytes, gpu::CopyKind::kDeviceToHost, stream_));
    CUDA_CHECK(gpu::stream_synchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0 || dst == src) return;
    CUDA_CHECK(gpu::memcpy_async(dst, src, bytes, gpu::CopyKind::kDeviceToDevice, stream_));
  }
  void synchronize() override { CUDA_CHECK(gpu::stream_synchronize(stream_)); }
  size_t memory_in_use() const override { return gpu::device_memory_stats().in_use; }
  size_t memory_peak() const override { return gpu::device_memory_stats().peak_in_use; }
  void reset_memory_peak() override { gpu::reset_peak_device_memory(); }

  void fill(float* x, float value, int64_t n) override { CUDA_CHECK(cuda::fill(x, value, n, stream_)); }
  void add(float* dst, const float* src, int64_t n) override { CUDA_CHECK(cuda::add_inplace(dst, src, n, stream_)); }
  void scale(float* x, float s, int64_t n) override { CUDA_CHECK(cuda::scale_inplace(x, s, n, stream_)); }
  void swap01(const float* src, float* dst, int64_t A, int64_t B, int64_t C) override {
    CUDA_CHECK(cuda::swap01(src, dst, A, B, C, stream_));
  }
  void gather_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                    const int32_t* map) override {
    CUDA_CHECK(cuda::gather_heads(src, dst, rows, src_heads, dst_heads, d, map, stream_));
  }
  void sum_heads(const float* src, float* dst, int64_t rows, int src_heads, int dst_heads, int d,
                 const int32_t* map) override {
    CUDA_CHECK(cuda::sum_heads(src, dst, rows, src_heads, dst_heads, d, map, stream_));
  }
  void sum_squares(const float* x, int64_t n, double* out) override {
    CUDA_CHECK(cuda::sum_squares(x, n, out, norm_work_.data<double>(), stream_));  // work: stream-ordered reuse
  }
  void swiglu_forward(const float* g, const float* u, float* h, int64_t n) override {
    CUDA_CHECK(cuda::swiglu_forward(g, u, h, n, stream_));
  }
  void swiglu_backward(const float* dh, const float* g, const float* u, float* dg, float* du, int64_t n) override {
    CUDA_CHECK(cuda::swiglu_backward(dh, g, u, dg, du, n, stream_));
  }

  void linear_forward(const float* x, const float* w, float* y, int n, int in, int out) override {
    const Operand X = operand(s16_a_, x, static_cast<int64_t>(n) * in);
    const Operand W = weight_operand(w, static_cast<int64_t>(out) * in);
    CUDA_CHECK(gpu::gemm(stream_, false, true, n, out, in, 1.0f, X.ptr, X.type, in, W.ptr, W.type, in, 0.0f, y,
                         DType::kF32, out));
  }
  void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, int n, int in,
                       int out, bool accumulate_dx) override {
    const Operand DY = operand(s16_a_, dy, static_cast<int64_t>(n) * out);
    if (dx) {  // dx[n, in] = dy[n, out] W[out, in]
      const Operand W = weight_operand(w, static_cast<int64_t>(out) * in);
      CUDA_CHECK(gpu::gemm(stream_, false, false, n, in, out, 1.0f, DY.ptr, DY.type, out, W.ptr, W.type, in,
                           accumulate_dx ? 1.0f : 0.0f, dx, DType::kF32, in));
    }
    if (dw) {  // dw[out, in] += dy^T[out, n] x[n, in]
      const Operand X = operand(s16_b_, x, static_cast<int64_t>(n) * in);
      CUDA_CHECK(gpu::gemm(stream_, true, false, out, in, n, 1.0f, DY.ptr, DY.type, out, X.ptr, X.type, in, 1.0f, dw,
                           DType::kF32, in));
    }
  }

  void rmsnorm_forward(const RmsNormArgs& a, const float* x, const float* w, float* y, float* rstd) override {
    CUDA_CHECK(cuda::rmsnorm_forward(a, x, w, y, rstd, stream_));
  }
  void rmsnorm_backward(const RmsNormArgs& a, const float* dy, const float* x, const float* w, const float* rstd,
                        float* dx, float* dw) override {
    float* work = dw ? grow(s32_w_, cuda::rmsnorm_backward_work_elems(a.rows, a.dim), DType::kF32).f32() : nullptr;
    CUDA_CHECK(cuda::rmsnorm_backward(a, dy, x, w, rstd, dx, dw, work, stream_));
  }
  void rope_forward(const RopeArgs& a, float* x) override { CUDA_CHECK(cuda::rope_forward(a, x, stream_)); }
  void rope_backward(const RopeArgs& a, float* dx) override { CUDA_CHECK(cuda::rope_backward(a, dx, stream_)); }
  void embedding_forward(const EmbeddingArgs& a, const int32_t* ids, const float* table, float* out) override {
    CUDA_CHECK(cuda::embedding_forward(a, ids, table, out, stream_));
  }
  void embedding_backward(const EmbeddingArgs& a, const int32_t* ids, const float* dout, float* dtable) override {
    CUDA_CHECK(cuda::embedding_backward(a, ids, dout, dtable, stream_));
  }
  void cross_entropy_max(const CrossEntropyArgs& a, const float* logits, float* row_max) override {
    CUDA_CHECK(cuda::cross_entropy_max(a, logits, row_max, stream_));
  }
  void cross_entropy_sumexp(const CrossEntropyArgs& a, const float* logits, const float* row_max,
                            float* row_sumexp) override {
    CUDA_CHECK(cuda::cross_entropy_sumexp(a, logits, row_max, row_sumexp, stream_));
  }
  void cross_entropy_target(const CrossEntropyArgs& a, const float* logits, const int32_t* targets,
                            float* target_logit) override {
    CUDA_CHECK(cuda::cross_entropy_target(a, logits, targets, target_logit, stream_));
  }
  void cross_entropy_finish(int rows, const float* m, const float* s, const float* t, const int32_t* targets,
                            float* row_loss, float* row_lse) override {
    CUDA_CHECK(cuda::cross_entropy_finish(rows, m, s, t, targets, row_loss, row_lse, stream_));
  }
  void cross_entropy_backward(const CrossEntropyArgs& a, float* logits, const float* row_lse,
                              const int32_t* targets, float scale) override {
    CUDA_CHECK(cuda::cross_entropy_backward(a, logits, row_lse, targets, scale, stream_));
  }
  void argmax_pairs(const CrossEntropyArgs& a, const float* logits, float* pairs) override {
    CUDA_CHECK(cuda::argmax_pairs(a, logits, pairs, stream_));
  }

  void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                         float* lse) override {
    if (precision() == Precision::kBF16 && flash_head_dim(a.d)) {
      const __nv_bfloat16* q16 = to_bf16(s16_a_, q, q_elems(a));
      const __nv_bfloat16* k16 = to_bf16(s16_b_, k, kv_elems(a));
      const __nv_bfloat16* v16 = to_bf16(s16_c_, v, kv_elems(a));
      __nv_bfloat16* o16 = grow(s16_o_, q_elems(a), DType::kBF16).data<__nv_bfloat16>();
      CUDA_CHECK(cuda::attention_forward_cuda(a, q16, k16, v16, o16, lse, stream_));
      CUDA_CHECK(cuda::cast_from_bf16(o16, out, q_elems(a), stream_));
      return;
    }
    if (precision() == Precision::kBF16) {
      q = rounded(s32_a_, s16_a_, q, q_elems(a));
      k = rounded(s32_b_, s16_b_, k, kv_elems(a));
      v = rounded(s32_c_, s16_c_, v, kv_elems(a));
    }
    CUDA_CHECK(cuda::attention_forward_f32(a, q, k, v, out, lse, stream_));
  }
  void attention_backward_delta(const AttentionArgs& a, const float* out, const float* dout, float* delta) override {
    CUDA_CHECK(cuda::attention_backward_delta_f32(a, out, dout, delta, stream_));
  }
  void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout,
                          const float* lse, const float* delta, float* dq, float* dk, float* dv) override {
    if (precision() == Precision::kBF16 && flash_head_dim(a.d)) {
      // The flash backward overwrites its fp32 gradients: compute into scratch, then add.
      const __nv_bfloat16* q16 = to_bf16(s16_a_, q, q_elems(a));
      const __nv_bfloat16* k16 = to_bf16(s16_b_, k, kv_elems(a));
      const __nv_bfloat16* v16 = to_bf16(s16_c_, v, kv_elems(a));
      const __nv_bfloat16* do16 = to_bf16(s16_d_, dout, q_elems(a));
      float* gq = grow(s32_a_, q_elems(a), DType::kF32).f32();
      float* gk = grow(s32_b_, kv_elems(a), DType::kF32).f32();
      float* gv = grow(s32_c_, kv_elems(a), DType::kF32).f32();
      CUDA_CHECK(cuda::attention_backward_cuda(a, q16, k16, v16, static_cast<const __nv_bfloat16*>(nullptr), do16, lse,
                                               const_cast<float*>(delta), gq, gk, gv, stream_));
      add(dq, gq, q_elems(a));
      add(dk, gk, kv_elems(a));
      add(dv, gv, kv_elems(a));
      return;
    }
    if (precision() == Precision::kBF16) {
      q = rounded(s32_a_, s16_a_, q, q_elems(a));
      k = rounded(s32_b_, s16_b_, k, kv_elems(a));
      v = rounded(s32_c_, s16_c_, v, kv_elems(a));
      dout = rounded(s32_d_, s16_d_, dout, q_elems(a));
    }
    CUDA_CHECK(cuda::attention_backward_f32(a, q, k, v, dout, lse, delta, dq, dk, dv, stream_));
  }
  void attention_merge(int b, int s_q, int h, int d, float* out, float* lse, const float* out_b,
                       const float* lse_b) override {
    CUDA_CHECK(cuda::attention_merge_f32(b, s_q, h, d, out, lse, out_b, lse_b, stream_));
  }
  // Always fp32 operands: the probabilities are read back against an lse the forward computed,
  // and an attention map is asked for in fp32 (ringtrain attend runs the model in fp32).
  void attention_probs(const AttentionArgs& a, const AttentionProbsArgs& p, const float* q, const float* k,
                       const float* lse, float* rows, float* pooled, float* stats) override {
    CUDA_CHECK(cuda::attention_probs_f32(a, p, q, k, lse, rows, pooled, stats, stream_));
  }

  void adamw_step(const AdamWArgs& a, float* param, const float* grad, float* m, float* v, int64_t n) override {
    CUDA_CHECK(cuda::adamw_step(a, param, grad, m, v, n, stream_));
    ++weights_generation_;
  }
  void weights_changed() override { ++weights_generation_; }
  void bf16_weights_at(const void* begin, size_t bytes) override {
    RT_CHECK(precision() == Precision::kBF16, "bf16 weights for a step in fp32");
    const char* b = static_cast<const char*>(begin);
    std::erase_if(bf16_ranges_, [b](const Range& r) { return r.begin == b; });
    if (bytes > 0) bf16_ranges_.push_back({b, bytes});
  }
  void cast_to_bf16(const float* x, void* y, int64_t n) override {
    CUDA_CHECK(cuda::cast_to_bf16(x, static_cast<__nv_bfloat16*>(y), n, stream_));
  }

 private:
  struct Operand {
    const void* ptr;
    DType type;
  };
  static bool flash_head_dim(int d) { return d == 64 || d == 128; }
  static int64_t q_elems(const AttentionArgs& a) { return static_cast<int64_t>(a.b) * a.s_q * a.h * a.d; }
  static int64_t kv_elems(const AttentionArgs& a) { return static_cast<int64_t>(a.b) * a.s_k * a.h_kv * a.d; }
  // Scratch that only grows (a steady step reuses it; the caching allocator serves growth).
  Tensor& grow(Tensor& t, int64_t n, DType dtype) {
    if (!t.defined() || t.dtype() != dtype || t.numel() < n) t = Tensor::empty({n}, dtype, device());
    return t;
  }
  const __nv_bfloat16* to_bf16(Tensor& scratch, const float* x, int64_t n) {
    __nv_bfloat16* y = grow(scratch, n, DType::kBF16).data<__nv_bfloat16>();
    CUDA_CHECK(cuda::cast_to_bf16(x, y, n, stream_));
    return y;
  }
  // x rounded to bf16 and widened back: bf16 operands for the fp32 kernels.
  const float* rounded(Tensor& f32, Tensor& bf16, const float* x, int64_t n) {
    const __nv_bfloat16* y = to_bf16(bf16, x, n);
    float* r = grow(f32, n, DType::kF32).f32();
    CUDA_CHECK(cuda::cast_from_bf16(y, r, n, stream_));
    return r;
  }
  // A weight as a GEMM operand: in bf16, its cached bf16 copy, recast when the weights changed.
  Operand weight_operand(const float* w, int64_t n) {
    if (precision() == Precision::kF32) return {w, DType::kF32};
    const char* at = reinterpret_cast<const char*>(w);
    for (const Range& r : bf16_ranges_)
      if (at >= r.begin && at < r.begin + r.bytes) return {w, DType::kBF16};  // gathered in bf16
    WeightCopy& c = weight_copies_[w];
    if (c.generation != weights_generation_ || !c.bf16.defined() || c.bf16.numel() < n) {
      to_bf16(c.bf16, w, n);
      c.generation = weights_generation_;
    }
    return {c.bf16.raw(), DType::kBF16};
  }
  // A GEMM operand in the backend's precision.
  Operand operand(Tensor& scratch, const float* x, int64_t n) {
    if (precision() == Precision::kF32) return {x, DType::kF32};
    return {to_bf16(scratch, x, n), DType::kBF16};
  }

  struct WeightCopy {
    Tensor bf16;
    uint64_t generation = 0;
  };
  std::unordered_map<const float*, WeightCopy> weight_copies_;
  struct Range {
    const char* begin;
    size_t bytes;
  };
  std::vector<Range> bf16_ranges_;  // bf16_weights_at
  uint64_t weights_generation_ = 1;
  int index_;
  std::string name_;
  gpu::Stream stream_ = nullptr;
  Tensor norm_work_;
  Tensor s16_a_, s16_b_, s16_c_, s16_d_, s16_o_, s32_a_, s32_b_, s32_c_, s32_d_, s32_w_;
};

int device_count() {
  int n = 0;
  if (gpu::get_device_count(&n) != gpu::Status::kSuccess) return 0;
  return n;
}

void pci_id(int index, int id[3]) {
  gpu::DeviceProps p;
  CUDA_CHECK(gpu::get_device_properties(&p, index));
  id[0] = p.pci_domain;
  id[1] = p.pci_bus;
  id[2] = p.pci_device;
}

std::unique_ptr<Communicator> make_communicator(MPI_Comm comm, Backend& backend, bool nccl) {
  const gpu::Stream compute = cuda_compute_stream(backend);
  if (nccl) return make_nccl_communicator(comm, nullptr, compute);
  return make_staged_mpi_communicator(comm, compute);
}

const GpuRuntime kRuntime{gpu::kEmulated, &device_count, &pci_id, &make_cuda_backend, &make_communicator};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(Precision precision, int index) {
  return std::make_unique<CudaBackend>(precision, index);
}

gpu::Stream cuda_compute_stream(Backend& backend) {
  auto* b = dynamic_cast<CudaBackend*>(&backend);
  RT_CHECK(b != nullptr, "not a CUDA backend: ", backend.describe());
  return b->stream();
}

void register_cuda_runtime() { set_gpu_runtime(&kRuntime); }

}  // namespace ringtrain
