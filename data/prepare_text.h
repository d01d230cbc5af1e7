// `ringtrain prepare-text FILES... --out X.bin [--val-fraction F] [--width 16|32]
// [--doc-separator REGEX]`: text files to token files with the built-in byte-level tokenizer,
// with a document index (one document per file, and per separator match within a file).
#pragma once

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

namespace ringtrain {

// Where the validation split of `out` goes: "X.bin" -> "X.val.bin"; a name without the ".bin"
// suffix gets ".val.bin" appended ("corpus" -> "corpus.val.bin").
std::string val_path_for(const std::string& out);

struct PrepareTextResult {
  uint64_t bytes_read = 0;
  uint64_t train_tokens = 0;
  uint64_t val_tokens = 0;  // 0 when no validation file was written
  uint64_t train_documents = 0;
  uint64_t val_documents = 0;
  std::string val_path;     // empty when no validation file was written
};

// Tokenizes `files` in order as one stream (a newline is added after a file that does not end
// in one, so that unpacked windows, which ignore documents, never see two files run together)
// and records where each document starts: every file is one document or more. With a non-empty
// `doc_separator` (an ECMAScript regular expression, `^` and `$` matching at line ends), each
// match within a file ends a document and is dropped: "\n\n+" makes paragraphs documents,
// "<\|endoftext\|>" splits at that marker, and a zero-width match such as
// "(?=^CHAPTER )" splits in front of each heading and drops nothing. Empty documents (two
// matches in a row, a match at either end) are skipped. Writes:
//  - `out`: the first (1 - val_fraction) of the tokens;
//  - when val_fraction > 0, val_path_for(out): the last val_fraction of the tokens (at least
//    one token), so validation text is text the model never trained on. A document that
//    straddles the cut is split: its head is the last document of `out`, its tail the first
//    of the validation file.
// Parent directories of `out` are created. Prints a one-line summary to `log` (nullptr: silent;
// call it on one rank only).
// Input errors: no files, a file that cannot be read, no text at all, val_fraction outside
// [0, 1), a width other than 2 or 4, a separator that is not a valid regular expression, or too
// little text to give both splits a token.
PrepareTextResult prepare_text(const std::vector<std::string>& files, const std::string& out,
                               double val_fraction, int width = 2, std::ostream* log = &std::cout,
                               const std::string& doc_separator = "");

}  // namespace ringtrain
