"""scripts/train-tokenizer: trains a byte-level BPE tokenizer (Hugging Face tokenizers) on text
files and saves its tokenizer.json, for corpora that come without a tokenizer of their own.

Digits are split one per token before the byte-level pre-tokenizer, so that a number is a row
of digit tokens (the passkey task hides and asks for keys digit by digit; see
scripts/prepare-data --prompts). Special tokens: <unk>, <s>, </s> (ids 0, 1, 2); </s> is the eos
prepare-data appends to every document.
"""
import argparse
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def main(argv):
    p = argparse.ArgumentParser(prog="scripts/train-tokenizer", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="text files (UTF-8)")
    p.add_argument("--vocab-size", type=int, default=1024, help="vocabulary size, special tokens included")
    p.add_argument("--out", required=True, help="tokenizer.json to write")
    a = p.parse_args(argv)
    if a.vocab_size < 256 + 3:
        raise SystemExit(f"train-tokenizer: --vocab-size must be at least 259 (the 256 bytes and 3 special tokens)")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=a.vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train(a.files, trainer)
    tok.save(a.out)
    print(f"train-tokenizer: a byte-level BPE of {tok.get_vocab_size()} tokens on {len(a.files)} files: {a.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
