#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention, the peer of bench_attention --device cuda.

The same shapes and FLOP counts as bench/attention_cuda.cpp: b x h x s with b*s = 32768
tokens (s = 2k .. --max-seq), h = 16, head dims 64 and 128, causal and not, bf16; forward
4*b*h*s^2*d FLOPs, backward 2.5x that, halved for causal; median of --reps timed runs after
one warm-up. One table per back end: flash and cuDNN on a GPU (torch.nn.attention.sdpa_kernel,
torch >= 2.3), flash (torch's CPU flash kernel) on the CPU at toy sizes for a smoke test.

  python3 bench/attention_sdpa.py [--device cuda|cpu] [--reps 10] [--max-seq 32768]
                                  [--tokens 32768] [--dtype bf16|fp32]
"""
import argparse
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--max-seq", type=int, default=32768)
    ap.add_argument("--min-seq", type=int, default=2048)
    ap.add_argument("--tokens", type=int, default=32768, help="b * s per row of the table")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        print(f"attention_sdpa: torch {torch.__version__} has no torch.nn.attention (needs >= 2.3)")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("attention_sdpa: no CUDA device: nothing to time")
        return 0
    dev = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    backends = [("flash", SDPBackend.FLASH_ATTENTION)]
    if args.device == "cuda":
        backends.append(("cudnn", SDPBackend.CUDNN_ATTENTION))
        print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    else:
        print(f"device: cpu ({torch.get_num_threads()} threads), torch {torch.__version__}")

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    def median_ms(fn):
        fn()
        sync()
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    for name, backend in backends:
        print(f"\nPyTorch SDPA ({name})")
        print(f"{'b':>4} {'h':>4} {'s':>6} {'d':>4} {'mask':<10} {'fwd ms':>10} {'fwd TFLOP/s':>12} "
              f"{'bwd ms':>10} {'bwd TFLOP/s':>12}")
        for d in (64, 128):
            s = args.min_seq
            while s <= args.max_seq:
                b = max(1, args.tokens // s)
                h = args.heads
                q, k, v = (torch.randn(b, h, s, d, device=dev, dtype=dtype, requires_grad=True) for _ in range(3))
                dout = torch.randn(b, h, s, d, device=dev, dtype=dtype)
                for causal in (False, True):
                    flops = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
                    try:
                        with sdpa_kernel(backend):
                            fwd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                            def bwd():
                                torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)
                            bwd_ms = median_ms(bwd)
                    except RuntimeError as e:  # the back end refuses this shape or dtype
                        print(f"{b:>4} {h:>4} {s:>6} {d:>4} {'causal' if causal else 'full':<10} "
                              f"unsupported: {str(e).splitlines()[0][:60]}")
                        continue
                    print(f"{b:>4} {h:>4} {s:>6} {d:>4} {'causal' if causal else 'full':<10} {fwd:>10.3f} "
                          f"{flops / (fwd * 1e-3) / 1e12:>12.1f} {bwd_ms:>10.3f} "
                          f"{2.5 * flops / (bwd_ms * 1e-3) / 1e12:>12.1f}", flush=True)
                s *= 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
