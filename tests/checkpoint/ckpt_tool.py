"""Helpers for tests/checkpoint/test_checkpoint_*.sh: damage a checkpoint in controlled ways
and check it (and an export) with readers outside ringtrain (h5py, a hand-written safetensors
parser: the `safetensors` package is not installed here).

  ckpt_tool.py flip FILE DATASET       flip one byte inside DATASET's first chunk
  ckpt_tool.py delete FILE DATASET     remove DATASET
  ckpt_tool.py reshape FILE DATASET    replace DATASET by one with an extra row
  ckpt_tool.py version FILE N          set the root attribute format_version to N
  ckpt_tool.py check FILE              h5py: attributes, every tensor global-shaped fp32 and finite
  ckpt_tool.py export OUT_DIR FILE     model.safetensors equals FILE's model/ tensors; config.json
"""
import json
import struct
import sys

import h5py
import numpy as np


def flip(path, name):
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(0)
        offset, size = info.byte_offset, info.size
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        b = fh.read(1)
        fh.seek(offset + size // 2)
        fh.write(bytes([b[0] ^ 0x5A]))
    print(f"flipped byte {offset + size // 2} (chunk 0 of {name} at {offset}, {size} bytes)")


def delete(path, name):
    with h5py.File(path, "r+") as f:
        del f[name]


def reshape(path, name):
    with h5py.File(path, "r+") as f:
        data = f[name][...]
        del f[name]
        bigger = np.concatenate([data, data[:1]], axis=0)
        f.create_dataset(name, data=bigger, chunks=True, fletcher32=True)


def version(path, n):
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = np.int64(n)


def check(path):
    with h5py.File(path, "r") as f:
        # String attributes are fixed-length (bytes in h5py), variable-length in older files.
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        assert a["format"] == "ringtrain-checkpoint", a["format"]
        assert int(a["format_version"]) == 1
        for k in ["step", "tokens_seen", "lr", "seed", "data_position", "mesh_dp", "mesh_cp", "mesh_tp",
                  "mesh_cp_mode", "mesh_zero1", "config"]:
            assert k in a, "missing attribute " + k
        assert "model:" in a["config"] and "parallel:" in a["config"]
        d, v, ff = int(a["model_d_model"]), int(a["model_vocab_size"]), int(a["model_d_ff"])
        names = sorted(f["model"].keys())
        assert "model.embed_tokens.weight" in names and "model.norm.weight" in names, names
        assert f["model/model.embed_tokens.weight"].shape == (v, d)
        assert f["model/model.layers.0.mlp.down_proj.weight"].shape == (d, ff)
        n = 0
        for group in ["model", "optimizer/exp_avg", "optimizer/exp_avg_sq"]:
            assert sorted(f[group].keys()) == names, group
            for name in names:
                ds = f[group][name]
                assert ds.dtype == np.float32 and ds.fletcher32, (group, name)
                x = ds[...]
                assert np.all(np.isfinite(x)), (group, name)
                if group == "optimizer/exp_avg_sq":
                    assert np.all(x >= 0), name
                n += x.size
        print(f"h5py ok: step {int(a['step'])}, {len(names)} parameters, {n} values")


def yaml_window(attrs):
    """model.sliding_window of the checkpoint's stored config (0 when absent)."""
    import yaml
    text = attrs["config"]
    text = text.decode() if isinstance(text, bytes) else str(text)
    return (yaml.safe_load(text).get("model") or {}).get("sliding_window", 0)


def export(out_dir, path):
    with open(out_dir + "/model.safetensors", "rb") as fh:
        raw = fh.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
    body = raw[8 + n:]
    meta = header.pop("__metadata__")
    assert meta["format"] == "pt"
    end = 0
    with h5py.File(path, "r") as f:
        assert sorted(header) == sorted(f["model"].keys())
        for name in sorted(header, key=lambda k: header[k]["data_offsets"][0]):
            t = header[name]
            b, e = t["data_offsets"]
            assert b == end, f"gap or overlap before {name}"
            end = e
            assert t["dtype"] == "F32"
            x = np.frombuffer(body[b:e], dtype="<f4").reshape(t["shape"])
            ref = f["model"][name][...]
            assert x.shape == ref.shape and np.array_equal(x, ref), name
        assert end == len(body), "trailing bytes"
        cfg = json.load(open(out_dir + "/config.json"))
        a = f.attrs
        window = int(yaml_window(a))
        if window > 0:
            assert cfg["architectures"] == ["MistralForCausalLM"] and cfg["model_type"] == "mistral"
            assert cfg["sliding_window"] == window
        else:
            assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
            assert "sliding_window" not in cfg
        assert cfg["hidden_size"] == int(a["model_d_model"]) and cfg["vocab_size"] == int(a["model_vocab_size"])
        assert cfg["intermediate_size"] == int(a["model_d_ff"])
        assert cfg["num_hidden_layers"] == int(a["model_n_layers"])
        assert cfg["num_attention_heads"] == int(a["model_n_heads"])
        assert cfg["num_key_value_heads"] == int(a["model_n_kv_heads"])
        assert cfg["hidden_act"] == "silu" and cfg["torch_dtype"] == "float32"
        for k in ["rms_norm_eps", "rope_theta", "tie_word_embeddings", "max_position_embeddings"]:
            assert k in cfg, k
    print(f"export ok: {len(header)} tensors, {len(body)} bytes")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"flip": flip, "delete": delete, "reshape": reshape, "check": check, "export": export,
     "version": lambda p, n: version(p, int(n))}[cmd](*args)
