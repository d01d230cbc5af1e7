#!/usr/bin/python3
"""PyTorch on the CPU, the peer of ringtrain's benchmarks (scripts/bench-cpu).

Times the same computations as bench_steps_attention_time and bench_steps_step_time, on the
same threads, and prints one JSON line each, in the same keys:

  attention  one attention forward+backward (causal unless --causal 0), b=1, h heads, head dim d, fp32: the
             explicit softmax (matmul, mask, softmax, matmul; the [s, s] scores materialized),
             or torch.nn.functional.scaled_dot_product_attention where this torch has it
             (2.0+; Debian's 1.13 does not). Backward by autograd from a random dout.
  sgemm      torch.mm of two n x n fp32 matrices (--sizes), GFLOP/s of the best of 5: the GEMM
             rate of this torch's own BLAS (MKL / oneDNN in PyPI's wheels), beside OpenBLAS's.
  step       one training step of tests/reference/llama_reference.py's Llama (the Hugging Face
             architecture written out, used by the reference test) in fp32: forward, loss,
             backward, global-norm clip, torch.optim.AdamW. The shape comes from --model.

    torch_peer.py attention --seq 2048 [--heads 8] [--dim 64] [--threads 2] [--reps 3] [--warmup 1]
                            [--causal 1]
    torch_peer.py sgemm --sizes 1024,2048 [--threads 2]
    torch_peer.py step --seq 2048 --model vocab=256,d=256,layers=2,heads=4,kv=4,ffn=768 \
                       [--micro-batch 1] [--threads 2] [--reps 3] [--warmup 1]

Times are the best of --reps after untimed warm-up runs (cpu_s: process CPU time, all threads,
steadier than wall time on a shared machine); vmhwm_mib is the process's peak
resident set (ru_maxrss), which includes the interpreter and torch itself (~250 MiB idle).
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # importing llama_reference leaves no __pycache__
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def attention(args):
    s, h, d = args.seq, args.heads, args.dim
    g = torch.Generator().manual_seed(1234 + s)
    q = torch.randn(1, h, s, d, generator=g, requires_grad=True)
    k = torch.randn(1, h, s, d, generator=g, requires_grad=True)
    v = torch.randn(1, h, s, d, generator=g, requires_grad=True)
    dout = torch.randn(1, h, s, d, generator=g)
    sdpa = getattr(F, "scaled_dot_product_attention", None)
    causal = bool(args.causal)
    mask = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1) if sdpa is None and causal else None

    def forward():
        if sdpa is not None:
            return sdpa(q, k, v, is_causal=causal)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        return torch.matmul(torch.softmax(scores, dim=-1), v)

    best_f = best_b = best_t = best_cpu = float("inf")
    for r in range(-args.warmup, args.reps):
        for t in (q, k, v):
            t.grad = None
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = forward()
        tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        out.backward(dout)
        tb = time.perf_counter() - t0
        cpu = time.process_time() - c0
        del out
        if r < 0:
            continue
        best_cpu = min(best_cpu, cpu)
        best_f, best_b, best_t = min(best_f, tf), min(best_b, tb), min(best_t, tf + tb)
    flops = 3.5 * 4.0 * s * s * h * d * (0.5 if causal else 1.0)
    print(json.dumps({"what": "attention", "impl": "torch " + torch.__version__,
                      "kernel": "sdpa" if sdpa is not None else "explicit softmax",
                      "seq": s, "b": 1, "h": h, "d": d, "causal": causal, "threads": torch.get_num_threads(),
                      "fwd_s": round(best_f, 5), "bwd_s": round(best_b, 5), "total_s": round(best_t, 5), "cpu_s": round(best_cpu, 5),
                      "gflops": round(flops / best_t * 1e-9, 1),
                      "cpu_gflops": round(flops / best_cpu * 1e-9, 1), "vmhwm_mib": round(peak_mib(), 1)}))


def sgemm(args):
    for n in (int(x) for x in args.sizes.split(",")):
        a, b = torch.full((n, n), 0.5), torch.full((n, n), 0.25)
        c = torch.mm(a, b)
        best = best_cpu = float("inf")
        for _ in range(5):
            c0 = time.process_time()
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        print(json.dumps({"what": "sgemm", "impl": "torch " + torch.__version__, "n": n,
                          "threads": torch.get_num_threads(), "gflops": round(2.0 * n ** 3 / best * 1e-9, 1),
                          "cpu_gflops": round(2.0 * n ** 3 / best_cpu * 1e-9, 1)}))


def parse_model(text):
    m = dict(kv.split("=") for kv in text.split(","))
    return {k: int(v) for k, v in m.items()}


def step(args):
    from llama_reference import Llama, expected_names, expected_shape

    shape = parse_model(args.model)
    meta = {"vocab_size": shape["vocab"], "d_model": shape["d"], "n_layers": shape["layers"],
            "n_heads": shape["heads"], "n_kv_heads": shape["kv"], "d_ff": shape["ffn"],
            "rope_theta": 10000.0, "norm_eps": 1e-5, "tie_embeddings": bool(shape.get("tied", 0))}
    g = torch.Generator().manual_seed(7)
    weights = {}
    for name in expected_names(meta):
        dims = expected_shape(meta, name)
        weights[name] = (torch.ones(dims) if len(dims) == 1 else torch.randn(*dims, generator=g) * 0.02).numpy()
    model = Llama(meta, weights, torch.float32)
    params = [model.params[n] for n in model.names()]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    b, s = args.micro_batch, args.seq
    ids = torch.randint(0, meta["vocab_size"], (b, s), generator=g)
    targets = torch.roll(ids, -1, dims=1)

    def one_step():
        opt.zero_grad(set_to_none=True)
        loss = model.forward(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return float(loss)

    for _ in range(args.warmup):
        one_step()
    times, cpus = [], []
    loss = 0.0
    for _ in range(args.reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = one_step()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    times.sort()
    print(json.dumps({"what": "step", "impl": "torch " + torch.__version__, "seq_len": s, "micro_batch": b,
                      "threads": torch.get_num_threads(), "step_s": times, "step_s_min": round(times[0], 5),
                      "step_s_median": round(times[len(times) // 2], 5), "cpu_s_min": round(min(cpus), 5), "loss": round(loss, 5),
                      "params": sum(p.numel() for p in params), "vmhwm_mib": round(peak_mib(), 1)}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["attention", "sgemm", "step"])
    p.add_argument("--seq", type=int, default=0)
    p.add_argument("--sizes", default="1024,2048", help="sgemm: matrix sizes")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--causal", type=int, default=1, help="attention: 1 causal (default), 0 not")
    p.add_argument("--model", default="vocab=256,d=256,layers=2,heads=4,kv=4,ffn=768")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.what != "sgemm" and args.seq < 1:
        p.error(f"{args.what} needs --seq >= 1")
    {"attention": attention, "sgemm": sgemm, "step": step}[args.what](args)


if __name__ == "__main__":
    main()
