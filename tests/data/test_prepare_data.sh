#!/usr/bin/env bash
# scripts/prepare-data with a real BPE tokenizer (Hugging Face tokenizers, scripts/ml-venv):
# the test trains a small byte-level BPE on KJV text (Debian's bible-kjv, no download) with the
# same library, tokenizes three books into a token file, and checks
#  - each document's ids equal the tokenizer's own encode() of its text, then the eos id;
#  - the document index (one document per book, version 2) and the vocabulary size in the header;
#  - the validation split: OUT.val.bin holds the tail, its index rebased at the cut;
#  - ringtrain trains on it (data.task text, packing documents, vocab_size from the header);
#  - --prompts: the passkey words and digits as the tokenizer's encode() of each; the passkey task
#    and a needle sweep run on them (cp 2); prompts of another vocabulary are refused (exit 2);
#  - scripts/train-tokenizer: digits one token each, special ids 0-2, decode(encode(x)) == x.
# Catches: special tokens added inside documents, documents merged or split, ids over uint16
# written truncated, a header ringtrain cannot read.
set -uo pipefail
bin="${RINGTRAIN_BIN:?RINGTRAIN_BIN must name the ringtrain binary}"
src="${RINGTRAIN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v bible >/dev/null 2>&1 || { echo "skip: bible-kjv is not installed (scripts/test installs it)"; exit 77; }
py="$("$src/scripts/ml-venv")" || fail "scripts/ml-venv"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

# Three books, verse labels stripped ("Ruth1:1 In the days..." -> "In the days...").
for r in "Ruth1:1-Ruth4:22" "Jonah1:1-Jonah4:11" "Obad1:1-Obad1:21"; do
  bible -f "$r" | sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' > "$tmp/${r%%1:1*}.txt"
done
"$py" - "$tmp" <<'PYEOF' || fail "training the BPE tokenizer"
import glob, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train(sorted(glob.glob(sys.argv[1] + "/*.txt")),
          trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
tok.save(sys.argv[1] + "/tokenizer.json")
print(f"trained a byte-level BPE of {tok.get_vocab_size()} tokens on {len(glob.glob(sys.argv[1] + '/*.txt'))} books")
PYEOF

"$src/scripts/prepare-data" "$tmp"/Jonah.txt "$tmp"/Obad.txt "$tmp"/Ruth.txt --tokenizer "$tmp/tokenizer.json" \
  --out "$tmp/kjv.bin" --val-fraction 0.1 || fail "prepare-data"

"$py" - "$tmp" <<'PYEOF' || fail "token ids"
import struct, sys
from tokenizers import Tokenizer
d = sys.argv[1]
tok = Tokenizer.from_file(d + "/tokenizer.json")
eos = tok.token_to_id("</s>")

def read(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"RTTOKENS"
    version, width, count, vocab, _, docs = struct.unpack("<IIQIIQ", raw[8:40])
    assert version == 2 and width == 2, (version, width)
    toks = list(struct.unpack(f"<{count}H", raw[64:64 + 2 * count]))
    at = 64 + 2 * count + (-(64 + 2 * count) % 8)
    starts = list(struct.unpack(f"<{docs}Q", raw[at:at + 8 * docs]))
    assert at + 8 * docs == len(raw), "trailing bytes"
    return toks, starts, vocab

train, ts, vocab = read(d + "/kjv.bin")
val, vs, vocab_v = read(d + "/kjv.val.bin")
assert vocab == vocab_v == tok.get_vocab_size(with_added_tokens=True), (vocab, vocab_v)
want = [tok.encode(open(f"{d}/{b}.txt").read(), add_special_tokens=False).ids + [eos] for b in ("Jonah", "Obad", "Ruth")]
flat = [i for w in want for i in w]
assert train + val == flat, "the tokens are not each document's encode() followed by eos"
starts = [0, len(want[0]), len(want[0]) + len(want[1])]
cut = len(train)
assert ts == [s for s in starts if s < cut] and vs == [0] + [s - cut for s in starts if s > cut], (ts, vs, cut)
assert abs(len(val) - round(0.1 * len(flat))) <= 1
print(f"ok: {len(flat)} tokens = encode() of 3 books + eos each; documents {ts} + val {vs}; vocab {vocab}")
PYEOF

"$bin" train "$src/configs/test-tiny.yaml" --set data.task=text --set data.train="$tmp/kjv.bin" \
  --set data.val="$tmp/kjv.val.bin" --set data.packing=documents --set model.vocab_size=600 --set train.seq_len=128 \
  --set train.steps=3 --set train.eval_batches=1 --set run.out_dir="$tmp/run" --set log.progress=never > "$tmp/train.log" 2>&1 ||
  { cat "$tmp/train.log"; fail "training on the prepared file"; }
grep -q '^{"eval_loss"' "$tmp/train.log" || fail "no eval line"
echo "ok: ringtrain trained 3 steps on it: $(grep '^{"eval_loss"' "$tmp/train.log")"

# The passkey prompt's words in this tokenizer's ids (--prompts): each piece is the tokenizer's own
# encode() of it, each digit one token; ringtrain trains the passkey task on them with the BPE
# text as haystack (2 ranks, cp 2, packed) and sweeps a needle; a file of another vocabulary
# is refused naming both.
"$src/scripts/prepare-data" "$tmp"/Jonah.txt "$tmp"/Obad.txt "$tmp"/Ruth.txt --tokenizer "$tmp/tokenizer.json" \
  --out "$tmp/kjv.bin" --val-fraction 0.1 --prompts "$tmp/prompts.json" > /dev/null || fail "prepare-data --prompts"
"$py" - "$tmp" <<'PYEOF' || fail "prompt token ids"
import json, sys
from tokenizers import Tokenizer
d = sys.argv[1]
tok = Tokenizer.from_file(d + "/tokenizer.json")
p = json.load(open(d + "/prompts.json"))
enc = lambda s: tok.encode(s, add_special_tokens=False).ids
assert p["format"] == "ringtrain-prompt-tokens" and p["version"] == 1, p
assert p["vocab_size"] == tok.get_vocab_size(with_added_tokens=True)
assert [[i] for i in p["digits"]] == [enc(c) for c in "0123456789"], p["digits"]
words = {"full": ("The pass key is ", ". Remember it. ", "\nWhat is the pass key? The pass key is "),
         "compact": ("key ", ". ", "\nkey? ")}
for w, (intro, outro, question) in words.items():
    assert p[w] == {"intro": enc(intro), "outro": enc(outro), "question": enc(question)}, (w, p[w])
print(f"ok: prompts.json holds encode() of every piece and one token per digit ({p['digits']})")
PYEOF
passkey=(--set data.task=passkey --set data.train="$tmp/kjv.bin" --set data.val="$tmp/kjv.val.bin"
  --set data.prompt_tokens="$tmp/prompts.json" --set data.packing=documents --set data.passkey_digits=2
  --set model.vocab_size=600 --set train.seq_len=256 --set parallel.cp=2 --set log.progress=never)
mpirun --oversubscribe --bind-to none -np 2 "$bin" train "$src/configs/test-tiny.yaml" "${passkey[@]}" \
  --set train.steps=3 --set train.eval_batches=1 --set run.out_dir="$tmp/pk" --set checkpoint.dir="$tmp/pk/ckpt" \
  > "$tmp/pk.log" 2>&1 || { cat "$tmp/pk.log"; fail "passkey training on tokenized prompts"; }
mpirun --oversubscribe --bind-to none -np 2 "$bin" eval "$src/configs/test-tiny.yaml" "${passkey[@]}" --needle \
  --checkpoint "$tmp/pk/ckpt" --lengths 64,256 --depths 0,1 --samples 2 --set run.out_dir="$tmp/pk" > "$tmp/needle.log" 2>&1 ||
  { cat "$tmp/needle.log"; fail "needle sweep on tokenized prompts"; }
grep -q '"summary": "needle", "cells": 4' "$tmp/needle.log" || { cat "$tmp/needle.log"; fail "needle summary"; }
echo "ok: passkey training and a needle sweep on BPE prompts and haystack (cp 2)"
sed 's/"vocab_size": [0-9]*/"vocab_size": 700/' "$tmp/prompts.json" > "$tmp/prompts700.json"
"$bin" train "$src/configs/test-tiny.yaml" "${passkey[@]}" --set parallel.cp=1 --set data.prompt_tokens="$tmp/prompts700.json" \
  --set model.vocab_size=700 --set run.out_dir="$tmp/pk7" > "$tmp/pk7.log" 2>&1
[[ $? -eq 2 ]] && grep -q "kjv.bin has a vocabulary of 600 but data.prompt_tokens was written for one of 700" "$tmp/pk7.log" ||
  { cat "$tmp/pk7.log"; fail "prompts of another vocabulary accepted"; }
echo "ok: prompts of another vocabulary: exit 2, $(grep -m1 'ringtrain: error' "$tmp/pk7.log")"

# scripts/train-tokenizer: a byte-level BPE whose digits are one token each (a number is a row of
# digit tokens, as the passkey prompts need), with <unk> <s> </s> as ids 0-2.
"$src/scripts/train-tokenizer" "$tmp"/Jonah.txt "$tmp"/Obad.txt "$tmp"/Ruth.txt --vocab-size 400 \
  --out "$tmp/tt.json" > /dev/null || fail "train-tokenizer"
"$py" - "$tmp/tt.json" <<'PYEOF' || fail "train-tokenizer's tokenizer"
import sys
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
assert tok.get_vocab_size() == 400, tok.get_vocab_size()
assert [tok.token_to_id(t) for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
ids = tok.encode("the key is 48213 and 7", add_special_tokens=False).ids
digits = [tok.decode([i]).strip() for i in ids if tok.decode([i]).strip().isdigit()]
assert digits == list("482137"), digits
assert tok.decode(ids) == "the key is 48213 and 7", tok.decode(ids)
print("ok: train-tokenizer: 400 tokens, digits one per token, decode(encode(x)) == x")
PYEOF

# Errors: a tokenizer that is not one, an --eos the vocabulary lacks (exit non-zero, named).
echo '{"not": "a tokenizer"}' > "$tmp/bad.json"
"$src/scripts/prepare-data" "$tmp/Ruth.txt" --tokenizer "$tmp/bad.json" --out "$tmp/x.bin" 2> "$tmp/err.txt" &&
  fail "a bad tokenizer.json was accepted"
grep -q "cannot load .*bad.json" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "bad tokenizer message"; }
"$src/scripts/prepare-data" "$tmp/Ruth.txt" --tokenizer "$tmp/tokenizer.json" --eos "<nope>" --out "$tmp/x.bin" 2> "$tmp/err.txt" &&
  fail "an unknown --eos was accepted"
grep -q "'<nope>' is not in" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "unknown eos message"; }
echo "PASS"
