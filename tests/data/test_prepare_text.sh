#!/usr/bin/env bash
# `ringtrain prepare-text` end to end, and bad token files through `ringtrain train`: each must
# end with a clear `ringtrain: error:` line naming the file and the problem, and exit code 2.
# Catches: prepare-text writing nothing, the wrong split or no document index (one document per
# file, one per --doc-separator match), and bad data (missing, truncated, wrong magic, a bad
# document index, vocabulary mismatch) crashing, hanging or exiting with another code.
set -uo pipefail
bin="${RINGTRAIN_BIN:?RINGTRAIN_BIN must name the ringtrain binary}"
src="${RINGTRAIN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
config="$src/configs/test-tiny.yaml"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # check NAME CONDITION-RESULT
  if [[ "$2" == 0 ]]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}
# The header's uint64 at byte offset $2 of token file $1: 16 is the token count, 32 the number
# of documents in the index (version 2).
header_u64() { od -An -tu8 -j"$2" -N8 "$1" | tr -d ' '; }

# prepare-text: two files, 10% validation.
for i in $(seq 1 200); do
  echo "Line $i of a small generated corpus for the data tests."
done > "$tmp/a.txt"
printf 'A second file without a final newline' > "$tmp/b.txt"
out="$("$bin" prepare-text "$tmp/a.txt" "$tmp/b.txt" --out "$tmp/c/corpus.bin" \
       --val-fraction 0.1 2>&1)"
rc=$?
echo "$out"
check "prepare-text exits 0" $rc
[[ -s "$tmp/c/corpus.bin" && -s "$tmp/c/corpus.val.bin" ]]
check "prepare-text writes X.bin and X.val.bin" $?
# Every byte, plus the newline prepare-text adds after b.txt.
total=$(( $(wc -c < "$tmp/a.txt") + $(wc -c < "$tmp/b.txt") + 1 ))
train_tokens=$(header_u64 "$tmp/c/corpus.bin" 16)
val_tokens=$(header_u64 "$tmp/c/corpus.val.bin" 16)
[[ $(( train_tokens + val_tokens )) -eq $total ]]
check "every byte lands in train or val ($total tokens)" $?
[[ "$out" == *"corpus.val.bin"* ]]; check "summary names the val file" $?
# Two files, two documents; the 10% cut falls inside a.txt, so its tail starts the val file
# and b.txt follows it there.
train_docs=$(header_u64 "$tmp/c/corpus.bin" 32)
val_docs=$(header_u64 "$tmp/c/corpus.val.bin" 32)
[[ $train_docs -eq 1 && $val_docs -eq 2 ]]
check "one document per file, split at the val cut (train $train_docs, val $val_docs)" $?

# --doc-separator: blank lines end paragraphs (three here, one with two blank lines after it).
printf 'One.\n\nTwo,\nstill two.\n\n\nThree.\n' > "$tmp/paras.txt"
out="$("$bin" prepare-text "$tmp/paras.txt" --out "$tmp/paras.bin" --doc-separator '\n\n+' 2>&1)"
rc=$?
[[ $rc -eq 0 && $(header_u64 "$tmp/paras.bin" 32) -eq 3 && "$out" == *"3 documents"* ]]
check "--doc-separator '\\n\\n+': one document per paragraph (rc $rc: $out)" $?
[[ $(header_u64 "$tmp/paras.bin" 16) -eq $(( $(wc -c < "$tmp/paras.txt") - 5 )) ]]
check "--doc-separator drops the separators' bytes" $?
out="$("$bin" prepare-text "$tmp/paras.txt" --out "$tmp/x.bin" --doc-separator '(' 2>&1)"; rc=$?
[[ $rc -eq 2 && "$out" == *"ringtrain: error:"*"--doc-separator"*"not a valid regular expression"* ]]
check "bad --doc-separator: exit 2 (rc $rc)" $?

# The KJV as `bible -f` prints it ("Ruth4:22 And Obed ...", "1Sm1:1 Now there ..."): a
# zero-width separator before each book's first verse keeps every byte and makes each book a
# document (scripts/get-data splits books into files instead, after stripping the labels).
if command -v bible >/dev/null 2>&1; then
  bible -f "Ruth4:20-1Sam1:3" > "$tmp/kjv.txt"
  out="$("$bin" prepare-text "$tmp/kjv.txt" --out "$tmp/kjv.bin" \
         --doc-separator '(?=^[1-3]?[A-Za-z]+1:1 )' 2>&1)"
  rc=$?
  [[ $rc -eq 0 && $(header_u64 "$tmp/kjv.bin" 32) -eq 2 &&
     $(header_u64 "$tmp/kjv.bin" 16) -eq $(wc -c < "$tmp/kjv.txt") ]]
  check "KJV Ruth 4:20 - 1 Samuel 1:3: two books, two documents, every byte kept (rc $rc)" $?
else
  echo "skip KJV book separator (bible-kjv not installed)"
fi

# prepare-text: a missing input.
out="$("$bin" prepare-text "$tmp/nope.txt" --out "$tmp/x.bin" 2>&1)"; rc=$?
[[ $rc -eq 2 && "$out" == *"ringtrain: error:"*"nope.txt"* ]]
check "missing input file: exit 2 naming it (rc $rc)" $?

# Bad token files through train.
"$bin" prepare-text "$tmp/a.txt" --out "$tmp/good.bin" >/dev/null 2>&1
head -c 500 "$tmp/good.bin" > "$tmp/trunc.bin"
{ printf 'NOTATOKN'; tail -c +9 "$tmp/good.bin"; } > "$tmp/magic.bin"
expect_bad() {  # expect_bad NAME EXPECTED-TEXT --set ...
  local name="$1" want="$2"
  shift 2
  local got rc
  got="$("$bin" train "$config" --set run.out_dir="$tmp/run" --set train.steps=1 \
         --set data.task=text "$@" 2>&1)"
  rc=$?
  echo "  -> $(grep 'ringtrain: error' <<<"$got" | head -1)"
  [[ $rc -eq 2 && "$got" == *"ringtrain: error:"*"$want"* ]]
  check "$name: exit 2 with \"$want\" (rc $rc)" $?
}
expect_bad "missing token file" "missing.bin" --set data.train="$tmp/missing.bin"
expect_bad "truncated token file" "is truncated: header says" --set data.train="$tmp/trunc.bin"
expect_bad "wrong magic" "wrong magic" --set data.train="$tmp/magic.bin"
# Document 1 of paras.bin (header 64 bytes, 26 tokens x 2 bytes padded to 56, index at 120)
# moved past the end of the tokens.
cp "$tmp/paras.bin" "$tmp/badindex.bin"
printf '\x64' | dd of="$tmp/badindex.bin" bs=1 seek=128 conv=notrunc status=none
expect_bad "document index out of range" "document index is out of range: document 1" \
  --set data.train="$tmp/badindex.bin"
expect_bad "vocabulary mismatch" "vocabulary mismatch: data.train" \
  --set data.train="$tmp/good.bin" --set model.vocab_size=64

# data.packing: documents on a file without a document index (version 1: the 32-byte header
# rewritten, tokens moved up): trains it as one document and says so once; an indexed file
# trains without the notice.
{ head -c 8 "$tmp/good.bin"; printf '\x01\x00\x00\x00'; tail -c +13 "$tmp/good.bin" | head -c 20
  tail -c +65 "$tmp/good.bin" | head -c $(( 2 * $(header_u64 "$tmp/good.bin" 16) )); } > "$tmp/v1.bin"
packed() {  # packed TOKEN-FILE: stderr and stdout of one packed training step
  "$bin" train "$config" --set run.out_dir="$tmp/run" --set train.steps=1 --set data.task=text \
    --set data.packing=documents --set data.train="$1" 2>&1
}
got="$(packed "$tmp/v1.bin")"; rc=$?
notice="data.train: $tmp/v1.bin has no document index; packing it as one document"
[[ $rc -eq 0 && $(grep -cxF "$notice" <<<"$got") -eq 1 ]]
check "packing a file without an index: trains, notice printed once (rc $rc)" $?
got="$(packed "$tmp/good.bin")"; rc=$?
[[ $rc -eq 0 && "$got" != *"no document index"* ]]
check "packing an indexed file: no notice (rc $rc)" $?

exit $fail
