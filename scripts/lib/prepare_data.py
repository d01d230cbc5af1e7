"""scripts/prepare-data: text files -> a ringtrain token file (data/token_file.h, version 2, with
its document index), tokenized by a Hugging Face tokenizer.json through the `tokenizers` library.

Each file is one document, or several with --doc-separator (a Python regular expression,
multiline: ^ and $ match at line ends; each match ends a document and is dropped). Each
document is encoded on its own (tokenizer.encode(text, add_special_tokens=False)); the
tokenizer's end-of-sequence token, if it has one (--eos names it, else the first of the usual
names found in its vocabulary), ends every document, so a model learns where documents end. The
header records the tokenizer's vocabulary size (added tokens included): set model.vocab_size to
it (or above). With --val-fraction F the last F of the tokens go to OUT.val.bin (the document
index split at the cut, as `ringtrain prepare-text` does).

With --prompts P.json it also writes the fixed words of the passkey prompt and the ten digits as
this tokenizer's ids (data/prompt_tokens.h: the format; data.prompt_tokens: P.json), so that the
passkey task and `ringtrain eval --needle` build their prompts from this tokenizer's tokens with
the token file's text as the haystack. Each piece is encoded on its own; every digit must be one
token (scripts/train-tokenizer splits digits).
"""
import argparse
import json
import os
import re
import struct
import sys

from tokenizers import Tokenizer

EOS_NAMES = ["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "[SEP]"]


def write_token_file(path, tokens, vocab_size, starts):
    """Version 2: 64-byte header, tokens, zero padding to 8 bytes, then the uint64 starts."""
    width = 2 if vocab_size <= 1 << 16 else 4
    if tokens and max(tokens) >= vocab_size:
        raise SystemExit(f"prepare-data: token id {max(tokens)} is not below the vocabulary size {vocab_size}")
    docs = len(starts) if tokens else 0
    body = struct.pack(f"<{len(tokens)}{'H' if width == 2 else 'I'}", *tokens)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(b"RTTOKENS" + struct.pack("<IIQIIQ", 2, width, len(tokens), vocab_size, 0, docs) + bytes(24))
        f.write(body + bytes(-(64 + len(body)) % 8))
        if docs:
            f.write(struct.pack(f"<{docs}Q", *starts))
    os.replace(tmp, path)


# The passkey prompt's words (the same strings as the byte-level ones in data/prompt_tokens.cpp).
PROMPT_WORDS = {
    "full": {"intro": "The pass key is ", "outro": ". Remember it. ",
             "question": "\nWhat is the pass key? The pass key is "},
    "compact": {"intro": "key ", "outro": ". ", "question": "\nkey? "},
}


def write_prompts(path, tok, vocab_size):
    digits = []
    for d in "0123456789":
        ids = tok.encode(d, add_special_tokens=False).ids
        if len(ids) != 1:
            raise SystemExit(f"prepare-data: the digit {d} is {len(ids)} tokens in this tokenizer; --prompts needs one "
                             "token per digit (scripts/train-tokenizer makes such a tokenizer)")
        digits.append(ids[0])
    out = {"format": "ringtrain-prompt-tokens", "version": 1, "vocab_size": vocab_size, "digits": digits}
    for wording, pieces in PROMPT_WORDS.items():
        out[wording] = {k: tok.encode(v, add_special_tokens=False).ids for k, v in pieces.items()}
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(out, f)
        f.write("\n")
    os.replace(tmp, path)


def val_path_for(out):
    return out[:-4] + ".val.bin" if out.endswith(".bin") else out + ".val.bin"


def main(argv):
    p = argparse.ArgumentParser(prog="scripts/prepare-data", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="text files (UTF-8)")
    p.add_argument("--tokenizer", required=True, help="a tokenizer.json (Hugging Face tokenizers)")
    p.add_argument("--out", required=True, help="token file to write")
    p.add_argument("--val-fraction", type=float, default=0.0, help="tail fraction in [0, 1) written to OUT.val.bin")
    p.add_argument("--doc-separator", default="", help="regular expression ending a document within a file")
    p.add_argument("--eos", default="", help="end-of-sequence token (default: found by name; 'none': no eos)")
    p.add_argument("--prompts", default="", help="also write the passkey prompt's words as token ids (JSON)")
    a = p.parse_args(argv)
    if not 0.0 <= a.val_fraction < 1.0:
        raise SystemExit(f"prepare-data: --val-fraction must be in [0, 1), got {a.val_fraction}")
    try:
        tok = Tokenizer.from_file(a.tokenizer)
    except Exception as e:  # the library's own message names what is wrong
        raise SystemExit(f"prepare-data: cannot load {a.tokenizer}: {e}")
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    eos = None
    if a.eos and a.eos != "none":
        eos = tok.token_to_id(a.eos)
        if eos is None:
            raise SystemExit(f"prepare-data: --eos {a.eos!r} is not in {a.tokenizer}'s vocabulary")
    elif not a.eos:
        eos = next((tok.token_to_id(n) for n in EOS_NAMES if tok.token_to_id(n) is not None), None)
    sep = re.compile(a.doc_separator, re.MULTILINE) if a.doc_separator else None

    tokens, starts = [], []
    for path in a.files:
        try:
            text = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as e:
            raise SystemExit(f"prepare-data: cannot read {path}: {e}")
        for doc in (sep.split(text) if sep else [text]):
            ids = tok.encode(doc, add_special_tokens=False).ids
            if eos is not None:
                ids.append(eos)
            if ids:
                starts.append(len(tokens))
                tokens.extend(ids)
    if not tokens:
        raise SystemExit("prepare-data: the input files hold no text")
    n_val = 0
    if a.val_fraction > 0:
        n_val = max(1, round(a.val_fraction * len(tokens)))
        if n_val >= len(tokens):
            raise SystemExit(f"prepare-data: {len(tokens)} tokens are too few to hold out {a.val_fraction}")
    cut = len(tokens) - n_val
    if n_val:
        write_token_file(val_path_for(a.out), tokens[cut:], vocab_size, [0] + [s - cut for s in starts if s > cut])
    write_token_file(a.out, tokens[:cut], vocab_size, [s for s in starts if s < cut])
    if a.prompts:
        write_prompts(a.prompts, tok, vocab_size)
    eos_text = f"eos {tok.id_to_token(eos)} (id {eos}) after each document" if eos is not None else "no eos"
    print(f"prepare-data: {len(a.files)} files, {len(starts)} documents, {len(tokens)} tokens ({eos_text}), "
          f"vocab {vocab_size}: {a.out} ({cut} tokens)" + (f", {val_path_for(a.out)} ({n_val} tokens)" if n_val else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
