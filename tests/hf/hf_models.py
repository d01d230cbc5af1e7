"""Small random Llama and Mistral models built and saved by transformers itself, for
tests/hf/test_import.sh, and the checks on what ringtrain makes of them.

  hf_models.py make ROOT            one directory per case under ROOT, a window of tokens
                                    (ROOT/window.bin, ringtrain's token file) and ROOT/cases.txt
                                    (one line per case: name, then the layout checks' eval flags)
  hf_models.py loss DIR TOKENS EVAL_LOSS
                                    transformers' loss of the window (float64) against
                                    ringtrain's, within kF32 (tests/tolerance.h)
  hf_models.py same SRC_DIR EXPORT_DIR
                                    every tensor of SRC_DIR equals EXPORT_DIR's: bitwise for fp32
                                    sources, the bf16/fp16 values exactly (as fp32) otherwise
  hf_models.py check LIST           the lines of LIST, each "loss DIR TOKENS EVAL_LOSS LABEL" or
                                    "same SRC_DIR EXPORT_DIR", in one process (torch loads once)

The cases cover GQA group sizes 1 and 4, tied and untied embeddings, rope_scaling none,
linear, llama3 and yarn (with parameters that change positions inside the window), one and
several safetensors shards, fp32, bf16 and fp16 weights, Mistral's sliding window, and one
config.json in transformers 4's layout (rope_theta + rope_scaling with "type").
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from safetensors.numpy import load_file as np_load
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

ATOL, RTOL = 1e-5, 1e-5
SEED = 2023
VOCAB, WINDOW = 320, 64

# name: (class, group size, tied, rope_parameters, dtype, shards, extra config)
CASES = {
    "llama_g1_none_fp32": ("llama", 1, False, {"rope_type": "default", "rope_theta": 10000.0}, torch.float32, False, {}),
    "llama_g4_tied_linear_bf16_sharded": ("llama", 4, True, {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
                                          torch.bfloat16, True, {}),
    "llama_g4_llama3_fp32_sharded": ("llama", 4, False, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16,
                                                         "rope_theta": 500000.0}, torch.float32, True, {}),
    "llama_g1_tied_yarn_fp16": ("llama", 1, True, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16,
                                                   "rope_theta": 10000.0}, torch.float16, False, {}),
    "mistral_g4_yarn_window_bf16": ("mistral", 4, False, {"rope_type": "yarn", "factor": 2.0, "beta_fast": 16.0,
                                                          "beta_slow": 2.0, "attention_factor": 1.1,
                                                          "original_max_position_embeddings": 32, "rope_theta": 1e6},
                                    torch.bfloat16, True, {"sliding_window": 24}),
    "llama_g4_legacy_linear_fp32": ("llama", 4, False, {"rope_type": "linear", "factor": 3.0, "rope_theta": 20000.0},
                                    torch.float32, False, {"legacy": True}),
}


def build(name, root):
    kind, group, tied, rope, dtype, sharded, extra = CASES[name]
    torch.manual_seed(SEED + sorted(CASES).index(name))
    heads = 8
    # an extended model's context: factor x the original (transformers warns on any other)
    max_pos = int(rope.get("factor", 1) * rope["original_max_position_embeddings"]) if "original_max_position_embeddings" in rope else 2 * WINDOW
    common = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=heads, num_key_value_heads=heads // group, max_position_embeddings=max_pos,
                  rms_norm_eps=1e-5, tie_word_embeddings=tied, initializer_range=0.08, rope_parameters=dict(rope))
    if kind == "mistral":
        model = MistralForCausalLM(MistralConfig(sliding_window=extra["sliding_window"], **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    with torch.no_grad():  # norms away from 1, so that a weight read as another shows
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    d = os.path.join(root, name)
    model.to(dtype).save_pretrained(d, max_shard_size="200KB" if sharded else "1GB")
    assert os.path.exists(os.path.join(d, "model.safetensors.index.json")) == sharded, name
    if extra.get("legacy"):  # transformers 4's keys: rope_theta beside rope_scaling {"type": ...}
        cfg = json.load(open(os.path.join(d, "config.json")))
        params = cfg.pop("rope_parameters")
        cfg["rope_theta"] = params.pop("rope_theta")
        params["type"] = params.pop("rope_type")
        cfg["rope_scaling"] = params
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    # The (cp 2, tp 2) layout needs kv heads divisible by tp; every case here has >= 2.
    return d


def write_tokens(path, tokens):
    """Version 2 of data/token_file.h, uint16 tokens, no document index."""
    body = np.asarray(tokens, dtype="<u2").tobytes()
    with open(path, "wb") as f:
        f.write(b"RTTOKENS" + struct.pack("<IIQIIQ", 2, 2, len(tokens), VOCAB, 0, 0) + bytes(24))
        f.write(body + bytes(-(64 + len(body)) % 8))


def read_tokens(path):
    raw = open(path, "rb").read()
    version, width = struct.unpack("<II", raw[8:16])
    count = struct.unpack("<Q", raw[16:24])[0]
    start = 32 if version == 1 else 64
    return np.frombuffer(raw[start:start + count * width], dtype="<u2" if width == 2 else "<u4").astype(np.int64)


def make(root):
    os.makedirs(root, exist_ok=True)
    for name in CASES:
        build(name, root)
    rng = np.random.default_rng(SEED)
    write_tokens(os.path.join(root, "window.bin"), rng.integers(0, VOCAB, WINDOW + 1))
    with open(os.path.join(root, "cases.txt"), "w") as f:
        f.write("\n".join(CASES) + "\n")
    print(f"seed {SEED}: {len(CASES)} models under {root}")


def loss(d, tokens_path, eval_loss, label=""):
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64, attn_implementation="eager")
    model.eval()
    tokens = torch.tensor(read_tokens(tokens_path))
    with torch.no_grad():
        logits = model(input_ids=tokens[:-1].view(1, -1)).logits
        ref = float(torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), tokens[1:]))
    tol = ATOL + RTOL * abs(ref)
    print(f"{label}{os.path.basename(d)}: transformers {type(model).__name__} loss {ref:.7f}, ringtrain {eval_loss:.7f}, "
          f"|diff| {abs(ref - eval_loss):.2e} (tolerance {tol:.2e})")
    return 0 if abs(ref - eval_loss) <= tol else 1


def tensors(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with open(os.path.join(d, f), "rb") as fh:  # bf16 is not a numpy dtype: read the bits
                raw = fh.read()
            n = struct.unpack("<Q", raw[:8])[0]
            header = json.loads(raw[8:8 + n])
            header.pop("__metadata__", None)
            for name, t in header.items():
                b, e = t["data_offsets"]
                buf = raw[8 + n + b:8 + n + e]
                if t["dtype"] == "BF16":
                    x = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
                elif t["dtype"] == "F16":
                    x = np.frombuffer(buf, dtype="<f2").astype(np.float32)
                else:
                    assert t["dtype"] == "F32", t["dtype"]
                    x = np.frombuffer(buf, dtype="<f4")
                out[name] = x.reshape(t["shape"])
    return out


def same(src, exported):
    a, b = tensors(src), tensors(exported)
    if sorted(a) != sorted(b):
        print(f"tensor names differ: only in source {sorted(set(a) - set(b))}, only in export {sorted(set(b) - set(a))}")
        return 1
    for name in a:
        if a[name].shape != b[name].shape or not np.array_equal(a[name].view(np.uint32), b[name].view(np.uint32)):
            print(f"{name}: export differs from the source")
            return 1
    print(f"{os.path.basename(src)}: export(import(x)) holds x's {len(a)} tensors bit for bit (as fp32)")
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "loss":
        sys.exit(loss(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    elif cmd == "same":
        sys.exit(same(sys.argv[2], sys.argv[3]))
    elif cmd == "check":
        bad = 0
        for line in open(sys.argv[2]):
            f = line.split()
            if f[0] == "loss":
                bad += loss(f[1], f[2], float(f[3]), " ".join(f[4:]) + ": ")
            elif f[0] == "same":
                bad += same(f[1], f[2])
        print(f"{bad} check(s) failed" if bad else "every check passed")
        sys.exit(1 if bad else 0)
