#!/usr/bin/python3
"""An exported checkpoint outside ringtrain: the PyTorch Llama of
tests/reference/llama_reference.py, built from nothing but OUT_DIR/config.json (Hugging Face
keys) and OUT_DIR/model.safetensors (parsed here with json + struct: the `safetensors` package
is not installed), computes the loss of the one window of TOKENS.bin (seq_len + 1 tokens, so
`ringtrain eval --data TOKENS.bin` evaluates exactly that window) and compares it with the
eval_loss that ringtrain printed.

    export_reference.py OUT_DIR TOKENS.bin EVAL_LOSS

Catches: an export whose names, shapes, byte order or config.json keys do not describe the
model ringtrain trained (a transposed matrix, a wrong head count or rope_theta, a missing
tied head) — and so a file transformers' LlamaForCausalLM would load into a different model.
Tolerance: tests/tolerance.h kF32 (atol 1e-5, rtol 1e-5) plus half a unit of the 6 decimals
ringtrain prints.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import llama_reference as ref  # noqa: E402  (exits with a setup message if torch is missing)

np, torch = ref.np, ref.torch
ATOL, RTOL = ref.ATOL, ref.RTOL


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    body = raw[8 + n:]
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(body[b:e], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return out


def read_tokens(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"RTTOKENS", "not a ringtrain token file"
    version, width = struct.unpack("<II", raw[8:16])
    count = struct.unpack("<Q", raw[16:24])[0]
    start = 32 if version == 1 else 64  # data/token_file.h: the version-2 header is 64 bytes
    return np.frombuffer(raw[start:start + count * width], dtype="<u2" if width == 2 else "<u4").astype(np.int64)


def main():
    out_dir, tokens_path, eval_loss = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cfg = json.load(open(os.path.join(out_dir, "config.json")))
    window = cfg.get("sliding_window") or 0
    assert cfg["architectures"] == (["MistralForCausalLM"] if window else ["LlamaForCausalLM"]), cfg["architectures"]
    assert cfg["hidden_act"] == "silu"
    meta = {"d_model": cfg["hidden_size"], "n_layers": cfg["num_hidden_layers"],
            "n_heads": cfg["num_attention_heads"], "n_kv_heads": cfg["num_key_value_heads"],
            "norm_eps": cfg["rms_norm_eps"], "rope_theta": cfg["rope_theta"],
            "tie_embeddings": cfg["tie_word_embeddings"], "vocab_size": cfg["vocab_size"],
            "sliding_window": window}
    weights = read_safetensors(os.path.join(out_dir, "model.safetensors"))
    assert sorted(weights) == sorted(ref.expected_names(meta)), "tensor names"
    assert weights["model.embed_tokens.weight"].shape == (cfg["vocab_size"], cfg["hidden_size"])
    assert weights["model.layers.0.mlp.gate_proj.weight"].shape == (cfg["intermediate_size"], cfg["hidden_size"])
    tokens = read_tokens(tokens_path)
    s = len(tokens) - 1
    # One window only: ringtrain draws windows of seq_len + 1 tokens (= max_position_embeddings + 1).
    assert s == cfg["max_position_embeddings"], f"{tokens_path} holds {s + 1} tokens, not seq_len + 1"
    ids = torch.tensor(tokens[:-1]).view(1, s)
    targets = torch.tensor(tokens[1:]).view(1, s)
    model = ref.Llama(meta, weights, torch.float64)
    with torch.no_grad():
        loss = float(model.forward(ids, targets))
    tol = ATOL + RTOL * abs(loss) + 5e-7
    print(f"export reference: torch loss {loss:.7f}, ringtrain eval {eval_loss:.6f}, |diff| "
          f"{abs(loss - eval_loss):.2e} (tolerance {tol:.2e})")
    return 0 if abs(loss - eval_loss) <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
