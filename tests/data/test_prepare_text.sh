#!/usr/bin/env bash
# `ringtrain prepare-text` end to end, and bad token files through `ringtrain train`: each must
# end with a clear `ringtrain: error:` line naming the file and the problem, and exit code 2.
# Catches: prepare-text writing nothing or the wrong split, and bad data (missing, truncated,
# wrong magic, vocabulary mismatch) crashing, hanging or exiting with another code.
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
train_bytes=$(( $(wc -c < "$tmp/c/corpus.bin") - 32 ))
val_bytes=$(( $(wc -c < "$tmp/c/corpus.val.bin") - 32 ))
[[ $(( (train_bytes + val_bytes) / 2 )) -eq $total ]]
check "every byte lands in train or val ($total tokens)" $?
[[ "$out" == *"corpus.val.bin"* ]]; check "summary names the val file" $?

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
expect_bad "vocabulary mismatch" "vocabulary mismatch: data.train" \
  --set data.train="$tmp/good.bin" --set model.vocab_size=64

exit $fail
