#!/usr/bin/python3
"""The whole model against PyTorch.

A small, independent implementation of the Hugging Face Llama architecture in plain PyTorch
(autograd, no transformers import) redoes the training step that reference_dump ran with
ringtrain's explicit forward/backward, and compares the loss, every parameter's gradient, the
global gradient norm and every weight after one AdamW step.

    llama_reference.py --dumper PATH/reference_dump --dump OUT.bin [--set key=value ...]
    llama_reference.py --dump EXISTING.bin          (compare a dump made earlier)

What a failure here means: ringtrain no longer computes the function of transformers'
LlamaForCausalLM (a rotary-embedding convention, RMSNorm, GQA head mapping, causal mask,
SwiGLU order, tied head, ignore_index handling) or its gradient, or its AdamW step differs from
torch.optim.AdamW (bias correction, decoupled decay, which parameters decay, eps placement).

The reference computes in float64 by default (--dtype float32 to compute in fp32 instead), so
the measured error is ringtrain's fp32 error alone. Rotary cos/sin are formed in fp32 exactly as
transformers forms them (inv_freq, angle, cos and sin in fp32), then widened: that is the
function an exported checkpoint computes there, and what ringtrain's RoPE kernel reproduces.

Tolerance: the one table of tests/tolerance.h, kF32 = (atol 1e-5, rtol 1e-5), applied to each
tensor on its own scale: an element passes when
    |ringtrain - reference| <= ATOL * scale + RTOL * |reference|,  scale = max |reference|
(scale 1 for an all-zero tensor). kF32 is calibrated for O(1) values; gradients are often
O(1e-3) or smaller, where a bare atol of 1e-5 would pass almost anything. "max rel" printed per
tensor is max |ringtrain - reference| / scale.

Rows of the table:
  loss, norm  the mean cross-entropy and the global gradient norm;
  grad        ringtrain's gradient against the reference's autograd gradient;
  step        torch.optim.AdamW applied to ringtrain's own gradients against ringtrain's
              updated weights: the optimizer arithmetic alone, at the plain tolerance;
  after       the whole chain (reference gradients, then torch.optim.AdamW) against ringtrain's
              updated weights. AdamW's first step, lr * g / (|g| + eps), is ill-conditioned for
              the few elements with |g| ~ eps, so there the gradient tolerance is propagated
              through it (adamw_step1_allowance); the table says how many elements needed that.
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys

# tests/tolerance.h, kF32: fp32 kernels against a double reference. Keep these two numbers in
# step with that table; never loosen them to make this test pass.
ATOL = 1e-5
RTOL = 1e-5
# tests/tolerance.h, kRoundingSigmas: bf16 runs lie within this many standard deviations of the
# rounding model of the flash kernels (docs/GPU-EMULATION.md).
ROUNDING_SIGMAS = 6.0


def fail_setup(message):
    print("llama_reference: error: " + message, file=sys.stderr)
    sys.exit(2)


try:
    import numpy as np
except ImportError as e:
    fail_setup(f"cannot import numpy in {sys.executable} ({e}); install Debian's python3-numpy "
               "(scripts/test installs it: apt-get install python3-numpy)")
try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    fail_setup(f"cannot import torch in {sys.executable} ({e}); install Debian's python3-torch "
               "(scripts/test installs it: apt-get install python3-torch)")


# ---------------------------------------------------------------------------------------------
# The dump written by tests/reference/reference_dump.cpp.

DTYPES = {0: np.float32, 1: np.int32, 2: np.float64, 3: np.uint8}


def read_dump(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"RTREF001":
        fail_setup(f"{path}: not a reference dump (magic {data[:8]!r})")
    (count,) = struct.unpack_from("<I", data, 8)
    pos = 12
    records = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<I", data, pos)
        pos += 4
        name = data[pos:pos + name_len].decode()
        pos += name_len
        dtype_code, ndim = struct.unpack_from("<II", data, pos)
        pos += 8
        dims = struct.unpack_from("<%dq" % ndim, data, pos)
        pos += 8 * ndim
        dtype = np.dtype(DTYPES[dtype_code])
        n = int(np.prod(dims)) if ndim else 1
        arr = np.frombuffer(data, dtype=dtype, count=n, offset=pos).reshape(dims).copy()
        pos += n * dtype.itemsize
        records[name] = arr
    if pos != len(data):
        fail_setup(f"{path}: {len(data) - pos} trailing bytes")
    records["meta"] = json.loads(records["meta"].tobytes().decode())
    return records


# ---------------------------------------------------------------------------------------------
# The model: Hugging Face Llama, written out.

def rms_norm(x, weight, eps):
    # LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then the weight (statistics in >= fp32).
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def rotary_cos_sin(positions, head_dim, theta, dtype):
    # LlamaRotaryEmbedding: everything in fp32, the frequencies duplicated over both halves
    # (the rotate_half pairing of dimension i with i + d/2). positions: [b, s] (0..S-1 per row
    # for one document; restarting at 0 in each packed document, as transformers' position_ids).
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq  # [b, s, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # [b, 1, s, hd]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def attention_mask(b, s, docs=None, window=0):
    # True where a query (row) must NOT see a key (column): the future, another document
    # (packed sequences), or a key window or more positions back (Mistral's sliding window).
    i = torch.arange(s)[:, None]
    j = torch.arange(s)[None, :]
    hidden = (j > i)[None].expand(b, s, s)
    if docs is not None:
        hidden = hidden | (docs[:, :, None] != docs[:, None, :])
    if window > 0:
        hidden = hidden | ((i - j) >= window)[None]
    return hidden[:, None]  # [b, 1, s, s]


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def repeat_kv(x, n_rep):
    # [b, kv, s, d] -> [b, kv * n_rep, s, d]; query head h reads kv head h // n_rep.
    b, kv, s, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kv, n_rep, s, d).reshape(b, kv * n_rep, s, d)


# ---------------------------------------------------------------------------------------------
# bf16 mixed precision as ringtrain defines it (kernels/backend.h, "operands in the backend's
# precision"): every GEMM reads its operands rounded to bf16 (x and W forward; dy, W and x
# backward), attention reads q, k, v and dout rounded to bf16, and all arithmetic is wider.
# delta = rowsum(dout * out) takes dout unrounded, as both backends do.

def to_bf16(x):
    return x.to(torch.float32).to(torch.bfloat16).to(x.dtype)


class RoundOperand(torch.autograd.Function):
    """Forward: x rounded to bf16. Backward: the gradient unchanged (it belongs to x)."""
    @staticmethod
    def forward(ctx, x):
        return to_bf16(x)

    @staticmethod
    def backward(ctx, g):
        return g


class RoundIncomingGradient(torch.autograd.Function):
    """Forward: unchanged. Backward: the gradient rounded to bf16 (dy of the GEMM before it)."""
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return to_bf16(g)


def linear_bf16(x, w):
    return RoundIncomingGradient.apply(F.linear(RoundOperand.apply(x), RoundOperand.apply(w)))


class AttentionBf16(torch.autograd.Function):
    """softmax(q k^T * scale + mask) v on bf16-rounded q, k, v (k, v already repeated per query
    head); the backward on bf16-rounded dout, its delta on dout as it came."""
    @staticmethod
    def forward(ctx, q, k, v, mask, scale):
        q, k, v = to_bf16(q), to_bf16(k), to_bf16(v)
        p = torch.softmax((q @ k.transpose(-1, -2) * scale).masked_fill(mask, float("-inf")), dim=-1)
        out = p @ v
        ctx.save_for_backward(q, k, v, p, out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, p, out = ctx.saved_tensors
        delta = (dout * out).sum(-1, keepdim=True)
        d16 = to_bf16(dout)
        dv = p.transpose(-1, -2) @ d16
        ds = p * (d16 @ v.transpose(-1, -2) - delta)
        return ds @ k * ctx.scale, ds.transpose(-1, -2) @ q * ctx.scale, dv, None, None


class Llama:
    def __init__(self, meta, weights, dtype):
        self.m = meta
        self.dtype = dtype
        self.bf16 = meta.get("precision", "fp32") == "bf16"
        self.params = {name: torch.tensor(w, dtype=dtype, requires_grad=True) for name, w in weights.items()}

    def linear(self, x, w):
        return linear_bf16(x, w) if self.bf16 else F.linear(x, w)

    def names(self):
        return list(self.params)

    def forward(self, ids, targets, docs=None, positions=None):
        m, p = self.m, self.params
        b, s = ids.shape
        heads, kv_heads = m["n_heads"], m["n_kv_heads"]
        hd = m["d_model"] // heads
        eps = m["norm_eps"]
        if positions is None:
            positions = torch.arange(s, dtype=torch.int64)[None].expand(b, s)
        cos, sin = rotary_cos_sin(positions, hd, float(m["rope_theta"]), self.dtype)  # [b, 1, s, hd]
        mask = attention_mask(b, s, docs, int(m.get("sliding_window", 0)))

        x = F.embedding(ids, p["model.embed_tokens.weight"])
        for layer in range(m["n_layers"]):
            pre = f"model.layers.{layer}."
            h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
            q = self.linear(h, p[pre + "self_attn.q_proj.weight"]).view(b, s, heads, hd).transpose(1, 2)
            k = self.linear(h, p[pre + "self_attn.k_proj.weight"]).view(b, s, kv_heads, hd).transpose(1, 2)
            v = self.linear(h, p[pre + "self_attn.v_proj.weight"]).view(b, s, kv_heads, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = repeat_kv(k, heads // kv_heads)
            v = repeat_kv(v, heads // kv_heads)
            if self.bf16:
                o = AttentionBf16.apply(q, k, v, mask, 1.0 / math.sqrt(hd))
            else:
                scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)
                scores = scores.masked_fill(mask, float("-inf"))
                attn = torch.softmax(scores, dim=-1)
                o = torch.matmul(attn, v)
            o = o.transpose(1, 2).reshape(b, s, heads * hd)
            x = x + self.linear(o, p[pre + "self_attn.o_proj.weight"])

            h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
            gate = self.linear(h, p[pre + "mlp.gate_proj.weight"])
            up = self.linear(h, p[pre + "mlp.up_proj.weight"])
            x = x + self.linear(F.silu(gate) * up, p[pre + "mlp.down_proj.weight"])

        x = rms_norm(x, p["model.norm.weight"], eps)
        head = p["model.embed_tokens.weight"] if m["tie_embeddings"] else p["lm_head.weight"]
        logits = self.linear(x, head)
        # Targets are already aligned with positions (ringtrain's convention; transformers
        # shifts labels itself). Mean over the scored targets; -1 is ignored.
        return F.cross_entropy(logits.reshape(b * s, -1), targets.reshape(b * s), ignore_index=-1)


def expected_names(meta):
    names = ["model.embed_tokens.weight"]
    for layer in range(meta["n_layers"]):
        pre = f"model.layers.{layer}."
        names += [pre + "input_layernorm.weight", pre + "self_attn.q_proj.weight",
                  pre + "self_attn.k_proj.weight", pre + "self_attn.v_proj.weight",
                  pre + "self_attn.o_proj.weight", pre + "post_attention_layernorm.weight",
                  pre + "mlp.gate_proj.weight", pre + "mlp.up_proj.weight", pre + "mlp.down_proj.weight"]
    names.append("model.norm.weight")
    if not meta["tie_embeddings"]:
        names.append("lm_head.weight")
    return names


def expected_shape(meta, name):
    d, hd = meta["d_model"], meta["d_model"] // meta["n_heads"]
    shapes = {"model.embed_tokens.weight": (meta["vocab_size"], d), "lm_head.weight": (meta["vocab_size"], d),
              "model.norm.weight": (d,), "input_layernorm.weight": (d,), "post_attention_layernorm.weight": (d,),
              "self_attn.q_proj.weight": (meta["n_heads"] * hd, d),
              "self_attn.k_proj.weight": (meta["n_kv_heads"] * hd, d),
              "self_attn.v_proj.weight": (meta["n_kv_heads"] * hd, d),
              "self_attn.o_proj.weight": (d, meta["n_heads"] * hd),
              "mlp.gate_proj.weight": (meta["d_ff"], d), "mlp.up_proj.weight": (meta["d_ff"], d),
              "mlp.down_proj.weight": (d, meta["d_ff"])}
    key = name if name in shapes else name.split(".", 3)[3]
    return shapes[key]


# ---------------------------------------------------------------------------------------------
# Comparison.

def tensor_scale(ref):
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    return scale if scale > 0 else 1.0


def tolerance(ref, scale):
    return ATOL * scale + RTOL * np.abs(ref)


def adamw_step1_allowance(meta, grad_ref, grad_tol):
    """How far the first AdamW step may move when the gradient moves by up to grad_tol.

    At step 1 the bias-corrected moments are m = g and v = g^2, so the update is
    lr * g / (|g| + eps), whose derivative is lr * eps / (|g| + eps)^2: for the few elements
    with |g| near eps (1e-8) a gradient difference far inside the gradient tolerance moves the
    weight by up to lr. Propagating the gradient tolerance through that derivative (its largest
    value over g_ref +- grad_tol) keeps the chained check exact in meaning; the optimizer
    arithmetic itself is checked without this allowance on ringtrain's own gradients ("step").
    """
    lr, eps = meta["lr"], meta["eps"]
    g_low = np.maximum(np.abs(grad_ref) - grad_tol, 0.0)
    return np.minimum(lr * eps / (g_low + eps) ** 2 * grad_tol, 2.0 * lr)


def adamw(meta, named, dtype):
    """torch.optim.AdamW over `named` (name -> tensor with .grad), one step.

    Decay on the matrices (embedding and head included), none on the RMSNorm weights: the
    usual Llama/GPT grouping, chosen here independently of what ringtrain marks, so a wrong
    flag there shows up as a weight mismatch.
    """
    decay = [t for t in named.values() if t.dim() >= 2]
    no_decay = [t for t in named.values() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": meta["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=meta["lr"], betas=(meta["beta1"], meta["beta2"]), eps=meta["eps"])
    opt.step()


class Report:
    def __init__(self):
        self.failures = []
        self.rows = []

    def tensor(self, kind, name, got, ref, extra=None):
        """extra: per-element allowance added to the bound (the AdamW propagation below)."""
        got = np.asarray(got, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if got.shape != ref.shape:
            self.failures.append(f"{kind} {name}: shape {got.shape}, reference {ref.shape}")
            self.rows.append((kind, name, float("nan"), float("nan"), float("nan"), "SHAPE"))
            return
        scale = tensor_scale(ref)
        err = np.abs(got - ref)
        bound = tolerance(ref, scale)
        status = "ok"
        if extra is not None:
            widened = int(np.sum((err > bound) & (err <= bound + extra)))
            bound = bound + extra
            if widened:
                status = f"ok ({widened} element{'s' if widened > 1 else ''} with |grad| ~ eps)"
        bad = ~(err <= bound)  # NaN fails
        max_err = float(np.max(err)) if err.size else 0.0
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), ref.shape)
            self.failures.append(
                f"{kind} {name}: {int(bad.sum())} of {ref.size} elements outside atol {ATOL} * scale {scale:.3g} "
                f"+ rtol {RTOL}; first at {tuple(int(j) for j in i)}: ringtrain {got[i]:.9g} reference {ref[i]:.9g}")
            status = "FAIL"
        self.rows.append((kind, name, max_err, scale, max_err / scale, status))

    def within_model(self, kind, name, got, ref, sigma):
        """bf16: ||ringtrain - reference|| <= ROUNDING_SIGMAS * sigma + ||fp32 bound||, sigma the
        rounding model's standard deviation of the whole tensor's error (reference_dump)."""
        got = np.asarray(got, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        scale = tensor_scale(ref)
        err = float(np.sqrt(np.sum((got - ref) ** 2)))
        bound = ROUNDING_SIGMAS * sigma + float(np.sqrt(np.sum(tolerance(ref, scale) ** 2)))
        status = f"ok ({err / sigma:.2f} sigma)" if sigma > 0 else "ok"
        if not err <= bound:
            self.failures.append(f"{kind} {name}: ||ringtrain - reference|| {err:.3g} above {ROUNDING_SIGMAS} x "
                                 f"model sigma {sigma:.3g} + fp32 tolerance")
            status = "FAIL"
        self.rows.append((kind, name, err, scale, err / scale, status))

    def print(self):
        width = max(len(r[1]) for r in self.rows)
        print(f"{'what':5} {'tensor':{width}} {'max abs err':>12} {'scale':>10} {'max rel':>10}")
        for kind, name, err, scale, rel, status in self.rows:
            print(f"{kind:5} {name:{width}} {err:12.3e} {scale:10.3e} {rel:10.3e}  {status}")


def run_dumper(args):
    cmd = [args.dumper, args.dump]
    for s in args.set:
        cmd += ["--set", s]
    print("llama_reference: running " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        print(f"llama_reference: error: reference_dump exited with {proc.returncode}", file=sys.stderr)
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dumper", help="reference_dump executable; omitted: --dump must exist")
    parser.add_argument("--dump", required=True, help="the dump file (written by --dumper if given)")
    parser.add_argument("--set", action="append", default=[], help="override passed to reference_dump")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="precision of the reference computation")
    args = parser.parse_args()
    if args.dumper:
        run_dumper(args)
    elif not os.path.exists(args.dump):
        fail_setup(f"{args.dump} does not exist (give --dumper to write it)")

    torch.manual_seed(0)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    dump = read_dump(args.dump)
    meta = dump["meta"]
    print("llama_reference: " + json.dumps(meta))
    rep = Report()

    # The parameter set itself: the Hugging Face names and shapes, nothing more or less.
    names = expected_names(meta)
    for kind in ("before", "grad", "after"):
        have = sorted(k[len(kind) + 1:] for k in dump if k.startswith(kind + "/"))
        if have != sorted(names):
            rep.failures.append(f"{kind}: parameters {have}, expected the Hugging Face set {sorted(names)}")
    for name in names:
        w = dump.get("before/" + name)
        if w is not None and w.shape != expected_shape(meta, name):
            rep.failures.append(f"{name}: shape {w.shape}, Hugging Face Llama has {expected_shape(meta, name)}")
    if rep.failures:
        print("\n".join("llama_reference: FAIL " + f for f in rep.failures), file=sys.stderr)
        return 1

    model = Llama(meta, {n: dump["before/" + n] for n in names}, dtype)
    ids = torch.tensor(dump["batch.ids"], dtype=torch.int64)
    targets = torch.tensor(dump["batch.targets"], dtype=torch.int64)
    docs = torch.tensor(dump["batch.docs"], dtype=torch.int64) if "batch.docs" in dump else None
    positions = torch.tensor(dump["batch.rope_pos"], dtype=torch.int64) if "batch.rope_pos" in dump else None
    loss = model.forward(ids, targets, docs, positions)
    loss.backward()
    grads = {n: model.params[n].grad.detach().clone() for n in names}
    grad_norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))

    if meta["grad_clip"] > 0:
        fail_setup("the reference applies no gradient clipping; run reference_dump with train.grad_clip=0")
    if meta.get("step", 1) != 1:
        fail_setup("the AdamW comparison assumes the first step (fresh moments)")
    # The whole chain: the reference's own gradients through torch.optim.AdamW.
    adamw(meta, model.params, dtype)
    # The optimizer alone: torch.optim.AdamW on ringtrain's gradients, from the same weights.
    own = {}
    for n in names:
        own[n] = torch.tensor(dump["before/" + n], dtype=torch.float64, requires_grad=True)
        own[n].grad = torch.tensor(dump["grad/" + n], dtype=torch.float64)
    adamw(meta, own, torch.float64)

    if model.bf16:
        # The CUDA backend's bf16 step: the same operand roundings here, the flash kernels' own
        # roundings by the model's spread. The whole chain through AdamW is left out: its first
        # step, lr g / (|g| + eps), turns gradient differences of that size into sign flips;
        # "step" still checks the optimizer on ringtrain's own gradients.
        rep.within_model("loss", "mean cross-entropy", dump["loss"], loss.item(), float(dump["model_sigma/loss"]))
        for n in names:
            rep.within_model("grad", n, dump["grad/" + n], grads[n].numpy(), float(dump["model_sigma/grad/" + n]))
    else:
        rep.tensor("loss", "mean cross-entropy", dump["loss"], loss.item())
        rep.tensor("norm", "global grad norm", dump["grad_norm"], grad_norm)
        for n in names:
            rep.tensor("grad", n, dump["grad/" + n], grads[n].numpy())
    for n in names:
        rep.tensor("step", n, dump["after/" + n], own[n].detach().numpy())
    for n in names if not model.bf16 else []:
        g = grads[n].double().numpy()
        extra = adamw_step1_allowance(meta, g, tolerance(g, tensor_scale(g)))
        rep.tensor("after", n, dump["after/" + n], model.params[n].detach().numpy(), extra)
    rep.print()
    print(f"llama_reference: loss ringtrain {float(dump['loss']):.9f} reference {loss.item():.9f}; "
          f"grad norm ringtrain {float(dump['grad_norm']):.9f} reference {grad_norm:.9f}")
    if rep.failures:
        for f in rep.failures:
            print("llama_reference: FAIL " + f, file=sys.stderr)
        return 1
    print(f"llama_reference: PASS ({len(rep.rows)} comparisons, reference in {args.dtype}, "
          f"tolerance atol {ATOL} * scale + rtol {RTOL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
