// A Llama-style decoder with explicit forward and backward per layer (no autograd), sharded
// over the mesh: heads and MLP columns over tp (Megatron), the sequence over cp (zigzag),
// optionally norms/residuals over tp (sequence parallel). The function computed is the
// Hugging Face LlamaForCausalLM's: same names, shapes, RMSNorm and rotary convention.
//
// One micro-batch flows as token rows [N = b * s_local, d_model]:
//   embedding (vocab-parallel) -> n_layers x [RMSNorm -> q,k,v (column-parallel) -> RoPE
//   (global positions) -> context-parallel attention -> o (row-parallel) -> residual ->
//   RMSNorm -> gate,up (column-parallel) -> SwiGLU -> down (row-parallel) -> residual]
//   -> RMSNorm -> output projection (vocab-parallel) -> cross-entropy (vocab-parallel).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/rope.h"
#include "parallel/context_attention.h"
#include "parallel/tp_linear.h"
#include "parallel/vocab_parallel_loss.h"
#include "src/config/config.h"
#include "src/model/params.h"

namespace ringtrain {

class Mesh;
struct TensorGroups;

// model.rope_scaling and its parameters as the RoPE kernels take them.
RopeScaling rope_scaling_of(const ModelConfig& m);

// This rank's share of one micro-batch: b samples of seq_len tokens, the s_local = seq_len / cp
// tokens of its zigzag chunks. The batch carries its geometry: the model lays the sequence out
// over the cp ranks from seq_len (any length divisible by 2 * cp, one model for all).
struct LocalBatch {
  int b = 0;
  int s_local = 0;
  int seq_len = 0;                 // 0: s_local * cp
  std::vector<int32_t> ids;        // [b * s_local]
  std::vector<int32_t> targets;    // [b * s_local], -1 = ignored
  std::vector<uint8_t> answer;     // [b * s_local], 1 = scored for exact-match accuracy
  // Packed documents (both empty: each sample is one document and RoPE takes the global
  // positions).
  std::vector<int32_t> rope_pos;   // [b * s_local] position of each token inside its document
  std::vector<int32_t> docs;       // [b * seq_len] document id of every token of every WHOLE
                                   // sample: all cp ranks hold all, so each knows which ring
                                   // blocks can see each other
  // [cp][s_local] global positions each cp rank holds (the document-aware split of packed
  // micro-batches); empty: the zigzag of seq_len.
  std::vector<std::vector<int32_t>> member_positions;
};

struct ModelShape {
  int vocab = 0, d = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0;
  int tp = 1;
  int heads_local() const { return heads / tp; }
  int kv_local() const { return kv_heads / tp; }
  int ffn_local() const { return ffn / tp; }
  int vocab_local() const { return vocab / tp; }
};

class LlamaModel {
 public:
  // Coordinates come from the mesh; tensors live on `backend`'s device and travel over
  // `groups` (the mesh's host groups for the CPU backend). With ZeRO-1 the flat buffers are
  // padded to split evenly over dp.
  // `shapes_only`: parameters are registered but not allocated (--dry-run).
  LlamaModel(const Config& config, Mesh& mesh, Backend& backend, const TensorGroups& groups,
             bool shapes_only = false);
  ~LlamaModel();

  const ModelShape& shape() const { return shape_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  Backend& backend() { return be_; }
  // Global-shape-deterministic initialization: element i of a parameter depends only on
  // (seed, name, i), so every layout starts from the same global weights.
  void init_weights(uint64_t seed);

  // Called after the gradients of params [first, last] are complete for this micro-batch
  // (in backward order: head, layers n-1..0, embedding).
  using GradReady = std::function<void(int first, int last)>;

  // Forward and backward of one micro-batch; gradients ACCUMULATE into params().grads().
  // Every non-ignored target contributes loss_scale * its loss (pass 1 / tokens of the global
  // batch). Returns the sum of this rank's token losses (identical over tp).
  double forward_backward(const LocalBatch& batch, float loss_scale, const GradReady& ready);
  // Forward only: per-row losses (0 for ignored) and greedy predictions, on the host.
  void forward_eval(const LocalBatch& batch, std::vector<float>* row_loss,
                    std::vector<int32_t>* argmax);

  // Control for evaluations: attention limited to each rank's own tokens.
  void set_cross_rank(bool on) { attention_.cross_rank = on; }
  // Inspection (ringtrain attend): called in every forward right after layer l's attention,
  // with the layer's q and k (after RoPE, this rank's heads and tokens) and the saved lse, while
  // the context attention still holds the micro-batch's layout. Empty: none.
  using AttentionHook = std::function<void(int layer, ContextAttention& ctx, const LocalAttentionShape& shape,
                                           const float* q, const float* k, const ContextAttentionSaved& saved)>;
  void set_attention_hook(AttentionHook hook) { attention_hook_ = std::move(hook); }
  // Model FLOPs of one token's forward+backward at this sequence length (6N + attention).
  double flops_per_token(int seq_len) const;

  // Indices of parameters replicated over tp whose gradients are partial per tp rank (norm
  // weights under sequence parallelism); the trainer sums them over tp.
  const std::vector<int>& tp_partial_params() const { return tp_partial_; }

 private:
  struct Layer;
  struct Acts;
  struct Work;
  void layer_forward(int l, const float* x_in, float* x_out, Acts& a);
  void layer_backward(int l, const float* x_in, float* dx, Acts& a);
  float* buf(Tensor& t, int64_t n);  // t sized to n floats on the device
  void setup_batch(const LocalBatch& batch);
  void layout_sequence(int seq_len);
  void forward_trunk(const LocalBatch& batch, bool keep_acts);
  void head_logits();

  ModelConfig model_;
  bool recompute_;  // train.recompute: one activation set, each layer rebuilt in its backward
  ModelShape shape_;
  RopeScaling rope_scaling_;
  Mesh& mesh_;
  Backend& be_;
  TpGroup tp_;
  ContextAttention attention_;
  VocabShard vocab_;
  VocabLossBuffers vocab_buffers_;
  ParamStore params_;
  int p_embed_ = -1, p_final_norm_ = -1, p_lm_head_ = -1;
  std::vector<Layer> layers_;
  std::vector<int> tp_partial_;
  AttentionHook attention_hook_;

  // Per-micro-batch state.
  int64_t rows_ = 0, held_ = 0;
  int b_ = 0, s_local_ = 0, seq_len_ = 0;
  std::vector<int32_t> row_pos_;      // host: RoPE position of each token row
  Tensor row_pos_dev_, ids_, targets_;  // device: positions, token ids, targets of the batch
  std::vector<std::unique_ptr<Acts>> acts_;
  std::vector<Tensor> x_;  // layer inputs: x_[l] for layer l, x_[L] trunk output
  Tensor nf_, nf_rstd_, hf_, logits_, row_loss_, row_lse_;
  std::vector<float> row_loss_host_;
  // Step temporaries (gradient buffers, norm/projection scratch), sized on the first step and
  // reused: a steady-state step allocates none of them.
  std::unique_ptr<Work> work_;
  bool test_fail_ = false;  // RINGTRAIN_TEST_FAIL_RANK names this rank (tests/faults)
};

}  // namespace ringtrain
