#!/usr/bin/env python3
"""The same Llama as ringtrain's long-context GPU recipe (configs/llama-350m-*.yaml), trained in
PyTorch eager mode: the peer of ringtrain in scripts/bench-gpu-longctx.

What it runs, per step: forward of one sequence of --seq tokens (random ids; the throughput
does not depend on them), cross-entropy over the full vocabulary, backward, global-norm clip
to 1.0, AdamW. Mixed precision as ringtrain's `train.precision: bf16`: fp32 parameters,
gradients and AdamW state, bf16 matmul and attention operands (torch.autocast). Attention is
torch.nn.functional.scaled_dot_product_attention with is_causal, restricted to the fused kernels
(flash, cuDNN, memory-efficient: on an H100 / H200 in bf16 with head dim 64 PyTorch picks one;
--allow-math-sdpa lifts that), K/V heads repeated to the query heads as Hugging Face's Llama
does (--gqa native: SDPA's enable_gqa instead, torch 2.5+); with --recompute every decoder layer is recomputed in backward
(torch.utils.checkpoint, non-reentrant), as ringtrain's `train.recompute: true`. No
torch.compile, no fused kernels beyond what eager PyTorch ships (fused AdamW on CUDA).

Where this torch has no scaled_dot_product_attention (Debian's 1.13, the CPU toy run), the
attention is the explicit masked softmax; the row says `attn explicit`.

Numbers, as ringtrain reports them (docs/METRICS.md):
  tokens/s  seq * micro_batch / step time, the median of --steps timed steps after --warmup
            untimed ones (device synchronized around every step)
  MFU       flops_per_token * tokens/s / (--peak-tflops * 1e12), with ringtrain's count:
            6 * N + 6 * layers * seq * n_heads * head_dim, N = the elements of every weight
            matrix (q, k, v, o, gate, up, down, output projection; no embedding, no norms);
            the causal half of attention; recomputation not counted
  peak MiB  CUDA: torch.cuda.max_memory_allocated (tensors; reserved in the JSON too);
            CPU: the process's peak resident set

    pytorch_llama_eager.py --seq 16384 [--d-model 1024 --layers 24 --heads 16 --kv-heads 8
        --vocab 32000 --d-ff 0 --rope-theta 500000] [--recompute 1] [--precision bf16]
        [--steps 5 --warmup 2] [--peak-tflops 989] [--device cuda] [--header] [--json FILE]
    pytorch_llama_eager.py --device cpu --seq 256 --layers 2 --d-model 128 --heads 4 \
        --kv-heads 2 --vocab 256 --steps 2 --warmup 1 --header          # a toy run on the CPU

Prints one Markdown table row (the header too with --header), and with --json FILE writes the
numbers as one JSON object.
"""

import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

SDPA = getattr(F, "scaled_dot_product_attention", None)


def torch_at_least(major, minor):
    v = torch.__version__.split("+")[0].split(".")
    try:
        return (int(v[0]), int(v[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


NATIVE_GQA = [False]  # --gqa native (enable_gqa= arrived in torch 2.5)
FUSED_ONLY = [None]  # on CUDA: a context that allows the fused SDPA kernels only (no O(s^2) math path)


def fused_sdpa_context():
    """sdpa_kernel(flash, cuDNN, memory-efficient) where torch has it (2.3+): a shape or dtype no
    fused kernel takes fails loudly instead of silently materializing the s x s scores."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return None
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        backends.append(SDPBackend.CUDNN_ATTENTION)
    return lambda: sdpa_kernel(backends)


def llama_ffn(d_model):
    """ringtrain's rule (model.d_ff: 0): int(8 * d / 3) rounded up to a multiple of 32."""
    h = int(8 * d_model / 3)
    return (h + 31) // 32 * 32


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight).to(x.dtype)


def rope_tables(seq, head_dim, theta, device):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    ang = torch.outer(torch.arange(seq, device=device, dtype=torch.float32), inv)  # [s, hd/2]
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    """x [b, h, s, hd]: rotate pairs (x[2i], x[2i+1]) by position * theta^(-2i/hd)."""
    x1, x2 = x[..., 0::2].float(), x[..., 1::2].float()
    y = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return y.to(x.dtype)


class Attention(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h, self.kv, self.hd = a.heads, a.kv_heads, a.d_model // a.heads
        self.q = torch.nn.Linear(a.d_model, self.h * self.hd, bias=False)
        self.k = torch.nn.Linear(a.d_model, self.kv * self.hd, bias=False)
        self.v = torch.nn.Linear(a.d_model, self.kv * self.hd, bias=False)
        self.o = torch.nn.Linear(self.h * self.hd, a.d_model, bias=False)

    def forward(self, x, cos, sin):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.h, self.hd).transpose(1, 2)
        k = self.k(x).view(b, s, self.kv, self.hd).transpose(1, 2)
        v = self.v(x).view(b, s, self.kv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        group = self.h // self.kv
        if SDPA is not None and NATIVE_GQA[0]:
            o = self.sdpa(q, k, v, enable_gqa=group > 1)
        else:
            if group > 1:  # as Hugging Face's repeat_kv: each K/V head serves `group` query heads
                k = k.repeat_interleave(group, dim=1)
                v = v.repeat_interleave(group, dim=1)
            if SDPA is not None:
                o = self.sdpa(q, k, v)
            else:  # torch < 2.0: the explicit masked softmax
                scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd))
                mask = torch.ones(s, s, dtype=torch.bool, device=x.device).triu(1)
                scores = scores.float().masked_fill(mask, float("-inf"))
                o = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)
        return self.o(o.transpose(1, 2).reshape(b, s, self.h * self.hd))

    @staticmethod
    def sdpa(q, k, v, **kw):
        if FUSED_ONLY[0] is not None and q.is_cuda:
            with FUSED_ONLY[0]():
                return SDPA(q, k, v, is_causal=True, **kw)
        return SDPA(q, k, v, is_causal=True, **kw)


class Layer(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        ff = a.d_ff or llama_ffn(a.d_model)
        self.attn_norm = RMSNorm(a.d_model, a.norm_eps)
        self.attn = Attention(a)
        self.mlp_norm = RMSNorm(a.d_model, a.norm_eps)
        self.gate = torch.nn.Linear(a.d_model, ff, bias=False)
        self.up = torch.nn.Linear(a.d_model, ff, bias=False)
        self.down = torch.nn.Linear(ff, a.d_model, bias=False)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.recompute = bool(a.recompute)
        self.embed = torch.nn.Embedding(a.vocab, a.d_model)
        self.layers = torch.nn.ModuleList(Layer(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.d_model, a.norm_eps)
        self.out = torch.nn.Linear(a.d_model, a.vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, tokens, targets, cos, sin):
        x = self.embed(tokens)
        for layer in self.layers:
            if self.recompute:
                x = checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin)
        logits = self.out(self.norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))

    def matmul_params(self):
        """N of the FLOP count: weight matrices the tokens are multiplied by (no embedding)."""
        return sum(p.numel() for n, p in self.named_parameters() if p.dim() == 2 and not n.startswith("embed"))


def flops_per_token(model, a):
    return 6.0 * model.matmul_params() + 6.0 * a.layers * a.seq * a.d_model


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", type=int, default=16384)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--d-model", type=int, default=1024)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--d-ff", type=int, default=0, help="0: the Llama rule (as ringtrain)")
    p.add_argument("--rope-theta", type=float, default=500000.0)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--recompute", type=int, default=1, choices=(0, 1))
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense peak of the device; 0: no MFU")
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--gqa", default="repeat", choices=("repeat", "native"),
                   help="K/V heads for GQA: repeated to the query heads (as Hugging Face's Llama), or "
                        "SDPA's enable_gqa (torch 2.5+)")
    p.add_argument("--allow-math-sdpa", action="store_true",
                   help="let SDPA fall back to its unfused math path (s x s scores in memory)")
    p.add_argument("--label", default="pytorch eager")
    p.add_argument("--header", action="store_true", help="print the table header first")
    p.add_argument("--json", default="", help="also write the numbers to this file as JSON")
    a = p.parse_args(argv)
    if a.d_model % a.heads or a.heads % a.kv_heads or (a.d_model // a.heads) % 2:
        p.error("d_model must divide into heads of even size, heads into kv heads")
    if a.steps < 1 or a.warmup < 0:
        p.error("--steps >= 1, --warmup >= 0")

    if a.gqa == "native":
        if SDPA is None or not torch_at_least(2, 5):
            p.error("--gqa native needs torch 2.5+ (scaled_dot_product_attention's enable_gqa)")
        NATIVE_GQA[0] = True
    if not a.allow_math_sdpa:
        FUSED_ONLY[0] = fused_sdpa_context()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("pytorch_llama_eager: no CUDA device (use --device cpu for a toy run)", file=sys.stderr)
        return 2
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Llama(a).to(device)
    fused = {"fused": True} if device.type == "cuda" and torch_at_least(2, 0) else {}
    decay = [q for q in model.parameters() if q.dim() == 2]
    no_decay = [q for q in model.parameters() if q.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **fused)
    cos, sin = rope_tables(a.seq, a.d_model // a.heads, a.rope_theta, device)
    g = torch.Generator(device="cpu").manual_seed(a.seed)
    data = torch.randint(0, a.vocab, (a.micro_batch, a.seq + 1), generator=g).to(device)
    tokens, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    amp = a.precision == "bf16"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss = model(tokens, targets, cos, sin)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        sync(device)
        t0 = time.perf_counter()
        loss = step()
        sync(device)
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if i >= a.warmup:
            times.append(dt)

    step_s = statistics.median(times)
    tps = a.seq * a.micro_batch / step_s
    fpt = flops_per_token(model, a)
    mfu = fpt * tps / (a.peak_tflops * 1e12) if a.peak_tflops > 0 else None
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        reserved = torch.cuda.max_memory_reserved(device) / 2**20
        name = torch.cuda.get_device_name(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        reserved = None
        name = "cpu"
    attn = "sdpa" if SDPA is not None else "explicit"
    impl = f"{a.label} ({attn}{', gqa' if NATIVE_GQA[0] else ''}{', ckpt' if a.recompute else ''}, {a.precision})"
    if not all(math.isfinite(x) for x in losses):
        print(f"pytorch_llama_eager: non-finite loss {losses}", file=sys.stderr)
        return 1
    if a.header:
        print("| implementation | device | seq | layers | params | step s | tokens/s | MFU | peak MiB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    n_params = sum(q.numel() for q in model.parameters())
    mfu_s = f"{100 * mfu:.1f}%" if mfu is not None else "-"
    print(f"| {impl} | {name} | {a.seq} | {a.layers} | {n_params / 1e6:.1f}M | {step_s:.3f} | {tps:.0f} | {mfu_s} | "
          f"{peak:.0f} |", flush=True)
    if a.json:
        out = {"impl": impl, "device": name, "torch": torch.__version__, "seq": a.seq, "micro_batch": a.micro_batch,
               "layers": a.layers, "d_model": a.d_model, "heads": a.heads, "kv_heads": a.kv_heads, "vocab": a.vocab,
               "params": n_params, "recompute": bool(a.recompute), "precision": a.precision, "step_s": step_s,
               "step_times_s": times, "tokens_per_s": tps, "flops_per_token": fpt, "mfu": mfu,
               "peak_mib": peak, "reserved_mib": reserved, "losses": losses}
        with open(a.json, "w") as f:
            json.dump(out, f)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
