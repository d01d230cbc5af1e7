"""The exported model in the real transformers library: loads OUT_DIR with AutoModelForCausalLM
(LlamaForCausalLM, or MistralForCausalLM for a sliding-window model), computes the loss of the
token file's one window (ringtrain's convention: inputs = tokens[:-1], targets = tokens[1:]),
and compares it with ringtrain's eval loss of the same checkpoint and window.

  PY(scripts/ml-venv) tests/checkpoint/hf_loss.py OUT_DIR TOKENS.bin RINGTRAIN_EVAL_LOSS

Catches an export transformers reads as another model: wrong architecture or model_type, a
sliding window transformers does not apply (or applies with another width), a config key it
ignores. Exit 0 when the losses agree within kF32 (tests/tolerance.h: 1e-5 + 1e-5 * |loss|),
computed in float64 by transformers.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

ATOL, RTOL = 1e-5, 1e-5


def read_tokens(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"RTTOKENS", "not a ringtrain token file"
    version, width = struct.unpack("<II", raw[8:16])
    count = struct.unpack("<Q", raw[16:24])[0]
    start = 32 if version == 1 else 64
    return np.frombuffer(raw[start:start + count * width], dtype="<u2" if width == 2 else "<u4").astype(np.int64)


def main():
    out_dir, tokens_path, eval_loss = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cfg = json.load(open(os.path.join(out_dir, "config.json")))
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float64, attn_implementation="eager")
    model.eval()
    expect = "MistralForCausalLM" if cfg.get("sliding_window") else "LlamaForCausalLM"
    assert type(model).__name__ == expect, f"transformers built {type(model).__name__}, expected {expect}"
    if cfg.get("sliding_window"):
        assert model.config.sliding_window == cfg["sliding_window"], model.config.sliding_window
    tokens = torch.tensor(read_tokens(tokens_path))
    ids, targets = tokens[:-1].view(1, -1), tokens[1:].view(1, -1)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        loss = float(torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1)))
    tol = ATOL + RTOL * abs(loss)
    print(f"transformers {type(model).__name__}: loss {loss:.7f}, ringtrain eval {eval_loss:.7f}, "
          f"|diff| {abs(loss - eval_loss):.2e} (tolerance {tol:.2e})")
    return 0 if abs(loss - eval_loss) <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
