"""Reads a run's TensorBoard event files with TensorBoard's own reader (EventAccumulator) and
checks them against the run's metrics.jsonl: every number of every metrics.jsonl line must be
a scalar of the event files, at the same step, with the same value as a float32.

    python tb_check.py RUN_DIR [--min-steps N] [--config-text SUBSTRING] [--upto STEP]

Prints one line of what it found and exits 0, or names the first mismatch and exits 1.
Run with the interpreter of scripts/python-venv (it has the `tensorboard` package).
"""
import argparse
import glob
import json
import math
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator as ea

# metrics.jsonl key -> TensorBoard tag (the same table as tensorboard_tag() in
# src/train/metrics_log.cpp and docs/METRICS.md). A key missing here fails the check: a new
# metric must be documented and tagged.
TAGS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "tokens": "train/tokens",
    "tokens_per_s": "perf/tokens_per_s",
    "mfu": "perf/mfu",
    "elapsed_s": "perf/elapsed_s",
    "peak_host_mib": "memory/peak_host_mib",
    "rss_peak_mib": "memory/rss_peak_mib",
    "eval_loss": "eval/loss",
    "accuracy": "eval/accuracy",
    "eval_tokens": "eval/tokens",
}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--min-steps", type=int, default=1, help="at least this many logged train steps")
    ap.add_argument("--config-text", default="", help="the config text summary must contain this")
    ap.add_argument("--upto", type=int, default=None, help="check only metrics.jsonl lines up to this step")
    a = ap.parse_args()

    tb_dir = os.path.join(a.run_dir, "tb")
    files = glob.glob(os.path.join(tb_dir, "events.out.tfevents.*"))
    if not files:
        fail("no event file in " + tb_dir)

    acc = ea.EventAccumulator(tb_dir, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {}
    for t in tags["scalars"]:
        steps = [e.step for e in acc.Scalars(t)]
        if len(steps) != len(set(steps)):
            fail("tag %s has a step twice (%s): a resumed run's orphaned events were not purged" % (t, steps))
        scalars[t] = {e.step: e.value for e in acc.Scalars(t)}

    records = []
    with open(os.path.join(a.run_dir, "metrics.jsonl")) as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break  # a line cut by a kill: not a logged step
            r = json.loads(line)
            if a.upto is None or r["step"] <= a.upto:
                records.append((n, r))
    train_steps = [r["step"] for _, r in records if "loss" in r]
    if len(train_steps) < a.min_steps:
        fail("metrics.jsonl has %d train lines, wanted at least %d" % (len(train_steps), a.min_steps))

    # A resumed run appends the steps after its checkpoint again: the last line of a step wins,
    # as the resumed run's SessionLog START makes TensorBoard drop the older events.
    want = {}
    for n, r in records:
        for key, value in r.items():
            if key == "step" or isinstance(value, bool) or isinstance(value, str):
                continue
            want[(key, r["step"])] = (n, value)

    checked = 0
    for (key, step), (n, value) in sorted(want.items(), key=lambda kv: kv[1][0]):
        if key not in TAGS:
            fail("metrics.jsonl line %d: key '%s' has no TensorBoard tag in tb_check.py" % (n, key))
        tag = TAGS[key]
        if tag not in scalars:
            fail("tag %s (metrics.jsonl '%s') missing; event file tags: %s" % (tag, key, sorted(scalars)))
        if step not in scalars[tag]:
            fail("tag %s has no step %d (steps: %s)" % (tag, step, sorted(scalars[tag])))
        got = scalars[tag][step]
        expected = float("nan") if value is None else f32(float(value))
        if not ((math.isnan(got) and math.isnan(expected)) or got == expected):
            fail("tag %s step %d: event file %r, metrics.jsonl line %d %r (as float32 %r)"
                 % (tag, step, got, n, value, expected))
        checked += 1

    if a.config_text:
        if "config" not in tags["tensors"]:
            fail("no 'config' text summary; tensor tags: %s" % tags["tensors"])
        ev = acc.Tensors("config")[0]
        if ev.step != 0:
            fail("config text summary at step %d, wanted 0" % ev.step)
        meta = acc.SummaryMetadata("config")
        if meta.plugin_data.plugin_name != "text":
            fail("config summary's plugin is '%s', wanted 'text'" % meta.plugin_data.plugin_name)
        text = ev.tensor_proto.string_val[0].decode()
        if a.config_text not in text:
            fail("config text summary lacks %r:\n%s" % (a.config_text, text))

    print("ok: %d values of %d metrics.jsonl lines (train steps %s..%s) match %d TensorBoard tags in %s"
          % (checked, len(records), train_steps[0], train_steps[-1], len(scalars),
             " ".join(sorted(os.path.basename(f) for f in files))))


if __name__ == "__main__":
    main()
