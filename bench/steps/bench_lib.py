"""Shared by scripts/bench-cpu, scripts/bench-cp and scripts/bench-layouts: where the benchmark
programs are, running one and reading its JSON line, the machine line, and Markdown tables.

Environment:
  RINGTRAIN_BUILD   the build directory holding bench/steps/bench_steps_* (default: build/)
  MPIRUN            the MPI launcher (default: mpirun)
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TORCH_PEER = os.path.join(ROOT, "bench", "steps", "torch_peer.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def fail(message):
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(2)


def build_dir():
    return os.path.abspath(os.environ.get("RINGTRAIN_BUILD", os.path.join(ROOT, "build")))


def program(name):
    path = os.path.join(build_dir(), "bench", "steps", name)
    if not os.access(path, os.X_OK):
        fail(f"{path} not found; build it with\n"
             f"  cmake -S {ROOT} -B {build_dir()} -DCMAKE_BUILD_TYPE=Release\n"
             f"  cmake --build {build_dir()} --target {name}\n"
             "(bench/CMakeLists.txt must hold add_subdirectory(steps)), or set RINGTRAIN_BUILD")
    return path


def thread_env(threads):
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def mpirun(ranks):
    return shlex.split(os.environ.get("MPIRUN", "mpirun")) + ["--oversubscribe", "-np", str(ranks)]


def run_json(cmd, threads, timeout=300, quiet=False, env=None):
    """Runs cmd (extra environment: env), returns the JSON objects it printed (one per line starting with '{')."""
    if not quiet:
        shown = ["'<yaml>'" if "\n" in c else shlex.quote(c) for c in cmd]
        print("  $ " + " ".join(shown), file=sys.stderr, flush=True)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env={**thread_env(threads), **(env or {})}, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"    timed out after {timeout} s", file=sys.stderr)
        return []
    if p.returncode != 0:
        print(f"    exit {p.returncode}: {(p.stderr or p.stdout).strip()[-800:]}", file=sys.stderr)
        return []
    out = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    if not quiet:
        print(f"    {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    return out


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_bf16", "amx_int8")


def machine():
    """CPU model, cores (and how many this process may run on), vector/matrix extensions, caches."""
    model, isa, caches = "unknown CPU", [], []
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", text, re.M)
        if m:
            model = m.group(1).strip()
        flags = re.search(r"^Flags:\s*(.+)$", text, re.M)
        have = set(flags.group(1).split()) if flags else set()
        isa = [f for f in ISA_FLAGS if f in have]
        for level in ("L1d", "L2", "L3"):
            c = re.search(rf"^{level} cache:\s*(.+)$", text, re.M)
            if c:
                caches.append(f"{level} {c.group(1).strip()}")
    except OSError:
        pass
    load = os.getloadavg()[0]
    allowed = len(os.sched_getaffinity(0))
    return (f"{model}, {os.cpu_count()} cores ({allowed} allowed to this process); "
            f"{' '.join(isa) or 'no AVX2'}{'; ' + ', '.join(caches) if caches else ''}; load average {load:.1f} at start")


def table(headers, rows):
    """A Markdown table; floats as given (format them before)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(headers), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def fmt_s(x):
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def mib(x):
    return "-" if x is None else f"{x:.0f}"
