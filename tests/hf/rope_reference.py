"""RoPE scaling against transformers: ringtrain's rotated q/k (CPU and CUDA backends, through
tests/hf/rope_dump) equal transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb for every
rope type (default, linear, llama3, yarn) at positions up to 64k.

  PY(scripts/ml-venv) tests/hf/rope_reference.py ROPE_DUMP WORK_DIR

Catches a scaling formula that differs from transformers' (a wrong band edge in llama3, yarn's
ramp or its attention factor on cos/sin), and frequencies computed with other roundings or in
another order: one ulp in a large inv_freq moves the angle at position 65535 by ~4e-3 rad, far
outside the tolerance. The frequencies are checked first, within one ulp: theta ** (2i/d) is a
libm pow, and glibc's powf and the one torch's CPU kernel calls differ by an ulp for a few
(theta, i) (transformers on a GPU differs again); such a difference matters only where
pos * inv_freq is large, which the output comparison covers.
Tolerance kF32 of tests/tolerance.h (1e-5 + 1e-5 * |ref|), on fp32 outputs of both.
"""
import os
import subprocess
import sys

import numpy as np
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

ATOL, RTOL = 1e-5, 1e-5
SEED = 23

# name, head_dim, theta, rope_parameters beyond type and theta
CASES = [
    ("default", 64, 10000.0, {"rope_type": "default"}),
    ("default_500k_d128", 128, 500000.0, {"rope_type": "default"}),
    ("linear_x4", 64, 10000.0, {"rope_type": "linear", "factor": 4.0}),
    ("llama3_31", 128, 500000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    ("llama3_small", 32, 10000.0, {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 2.0,
                                    "high_freq_factor": 8.0, "original_max_position_embeddings": 512}),
    ("yarn_x4", 64, 10000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}),
    ("yarn_x16_betas_attn", 128, 1000000.0, {"rope_type": "yarn", "factor": 16.0, "beta_fast": 16.0,
                                              "beta_slow": 2.0, "attention_factor": 1.25,
                                              "original_max_position_embeddings": 2048}),
    ("yarn_no_truncate", 64, 10000.0, {"rope_type": "yarn", "factor": 8.0, "truncate": False,
                                        "original_max_position_embeddings": 512}),
]


def run_case(dump, work, name, hd, theta, params):
    heads, rng = 3, np.random.default_rng(SEED)
    positions = np.concatenate([np.arange(40), rng.integers(0, 65536, 80), [8191, 8192, 32767, 65535]]).astype(np.int32)
    tokens = len(positions)
    x = rng.standard_normal((tokens, heads, hd)).astype(np.float32)
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    x.tofile(os.path.join(d, "x.bin"))
    positions.tofile(os.path.join(d, "pos.bin"))
    typ = {"default": "none"}.get(params["rope_type"], params["rope_type"])
    args = [dump, d, str(tokens), str(heads), str(hd), repr(theta), typ, repr(params.get("factor", 1.0)),
            str(params.get("original_max_position_embeddings", 0)), repr(params.get("low_freq_factor", 1.0)),
            repr(params.get("high_freq_factor", 4.0)), repr(params.get("beta_fast", 32.0)),
            repr(params.get("beta_slow", 1.0)), repr(params.get("attention_factor", 0.0)),
            "1" if params.get("truncate", True) else "0"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{name}: rope_dump failed (CPU vs CUDA?):\n{r.stdout}{r.stderr}")
        return False

    # max_position_embeddings = factor x original, as a real extended config has it (else
    # transformers warns that the two disagree; it uses the explicit factor either way)
    max_pos = int(params.get("factor", 1.0) * params.get("original_max_position_embeddings", 65536))
    cfg = LlamaConfig(hidden_size=hd * heads, num_attention_heads=heads, num_key_value_heads=heads, head_dim=hd,
                      max_position_embeddings=max_pos, rope_parameters=dict(params, rope_theta=theta))
    rot = LlamaRotaryEmbedding(cfg)
    got_freq = np.fromfile(os.path.join(d, "inv_freq.bin"), dtype=np.float32)
    ref_freq = rot.inv_freq.numpy().astype(np.float32)
    ulps = np.abs(got_freq[:-1].view(np.int32).astype(np.int64) - ref_freq.view(np.int32).astype(np.int64))
    if ulps.max() > 1:
        i = int(np.argmax(ulps))
        print(f"{name}: inv_freq differs from transformers' by {ulps[i]} ulp at index {i}: "
              f"{got_freq[i]!r} vs {ref_freq[i]!r}")
        return False
    off = np.nonzero(ulps)[0]
    if len(off):
        print(f"{name}: inv_freq one ulp from transformers' at indices {off.tolist()} (libm pow)")
    if np.float32(rot.attention_scaling) != got_freq[-1]:
        print(f"{name}: attention scaling {got_freq[-1]!r} vs transformers' {rot.attention_scaling!r}")
        return False

    xt = torch.from_numpy(x).permute(1, 0, 2).unsqueeze(0)  # [1, heads, tokens, hd]
    cos, sin = rot(xt, torch.from_numpy(positions.astype(np.int64)).view(1, -1))
    ref, _ = apply_rotary_pos_emb(xt, xt, cos, sin)
    ref = ref[0].permute(1, 0, 2).numpy()
    ok = True
    for backend in ("cpu", "cuda"):
        path = os.path.join(d, f"{backend}_fwd.bin")
        if not os.path.exists(path):
            continue
        got = np.fromfile(path, dtype=np.float32).reshape(ref.shape)
        err = np.abs(got.astype(np.float64) - ref)
        lim = ATOL + RTOL * np.abs(ref)
        nbad = int((err > lim).sum())
        print(f"{name} [{backend}]: max |diff| {err.max():.2e} at positions up to {positions.max()}, "
              f"attention scaling {rot.attention_scaling:.6g}{'' if nbad == 0 else f', {nbad} values outside tolerance'}")
        ok = ok and nbad == 0
    return ok


def main():
    dump, work = sys.argv[1], sys.argv[2]
    print(f"seed {SEED}")
    results = [run_case(dump, work, *c) for c in CASES]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
