"""Compares `ringtrain attend`'s rows and pooled map with Hugging Face transformers' eager
attention (output_attentions=True) of the exported checkpoint on the same prompt.

  /usr/bin/python3 hf_attention.py --npz ATTENTION.h5 OUT.npz   (Debian's h5py: the venv has none)
  VENV_PYTHON hf_attention.py HF_DIR OUT.npz

Tolerance: the fp32 entry of tests/tolerance.h (kF32: atol 1e-5, rtol 1e-5), elementwise.
"""

import sys

import numpy as np

kAtol, kRtol = 1e-5, 1e-5


def to_npz(path, out):
    import h5py
    f = h5py.File(path, "r")
    arrays = {k: f[k][:] for k in ("tokens", "row_positions")}
    arrays["length"], arrays["pool"] = np.array(f.attrs["length"]), np.array(f.attrs["pool"])
    for layer in (k for k in f.keys() if k.startswith("layer_")):
        for head in f[layer].keys():
            for d in ("rows", "pooled"):
                arrays[f"{layer}/{head}/{d}"] = f[f"{layer}/{head}/{d}"][:]
    np.savez(out, **arrays)


def main():
    if sys.argv[1] == "--npz":
        to_npz(sys.argv[2], sys.argv[3])
        return
    import torch
    from transformers import AutoModelForCausalLM
    hf_dir, path = sys.argv[1], sys.argv[2]
    f = np.load(path)
    tokens = torch.tensor(f["tokens"], dtype=torch.long)[None]
    model = AutoModelForCausalLM.from_pretrained(hf_dir, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        out = model(tokens, output_attentions=True)
    L, pool = int(f["length"]), int(f["pool"])
    rows_at = f["row_positions"]
    worst, checked = 0.0, 0
    for layer, att in enumerate(out.attentions):
        a = att[0].double().numpy()  # [heads, L, L]
        for h in range(a.shape[0]):
            key = f"layer_{layer:02d}/head_{h:02d}"
            got, ref = f[key + "/rows"], a[h, rows_at, :]
            pooled_ref = a[h].reshape(L // pool, pool, L // pool, pool).sum(axis=(1, 3))
            for name, x, y in (("rows", got, ref), ("pooled", f[key + "/pooled"], pooled_ref)):
                err = np.abs(x - y)
                worst = max(worst, float(err.max()))
                bad = err > kAtol + kRtol * np.abs(y)
                if bad.any():
                    i = np.argwhere(bad)[0]
                    sys.exit(f"layer {layer} head {h} {name}: {int(bad.sum())} elements off, first at {tuple(i)}: "
                             f"ringtrain {x[tuple(i)]} transformers {y[tuple(i)]}")
                checked += x.size
    print(f"hf attention ok: {checked} probabilities of {len(out.attentions)} layers, max abs diff {worst:.3g}")


if __name__ == "__main__":
    main()
