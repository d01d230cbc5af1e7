#include "data/prepare_text.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <ostream>
#include <regex>
#include <sstream>
#include <string_view>

#include "data/token_file.h"
#include "data/tokenizer.h"
#include "src/core/error.h"

namespace ringtrain {

std::string val_path_for(const std::string& out) {
  const std::string suffix = ".bin";
  if (out.size() > suffix.size() &&
      out.compare(out.size() - suffix.size(), suffix.size(), suffix) == 0)
    return out.substr(0, out.size() - suffix.size()) + ".val.bin";
  return out + ".val.bin";
}

namespace {

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    input_error("prepare-text: ", path, " is a directory, not a text file");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    input_error("prepare-text: cannot read ", path, ": ", std::strerror(err));
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) input_error("prepare-text: error while reading ", path);
  return text;
}

void make_parent_dirs(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec)
    input_error("prepare-text: cannot create directory ", parent.string(), ": ", ec.message());
}

}  // namespace

PrepareTextResult prepare_text(const std::vector<std::string>& files, const std::string& out,
                               double val_fraction, int width, std::ostream* log,
                               const std::string& doc_separator) {
  if (files.empty())
    input_error("prepare-text: no input files (usage: prepare-text FILES... --out X.bin)");
  if (out.empty()) input_error("prepare-text: --out is required");
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    input_error("prepare-text: --val-fraction ", val_fraction, " must be in [0, 1)");
  if (width != 2 && width != 4) input_error("prepare-text: --width ", width, " must be 2 or 4");

  std::optional<std::regex> separator;
  if (!doc_separator.empty()) {
    try {
      separator.emplace(doc_separator, std::regex::ECMAScript | std::regex::multiline);
    } catch (const std::regex_error& e) {
      input_error("prepare-text: --doc-separator '", doc_separator,
                  "' is not a valid regular expression: ", e.what());
    }
  }

  PrepareTextResult result;
  std::vector<uint32_t> tokens;
  std::vector<uint64_t> starts;
  auto add_document = [&](std::string_view text) {
    if (text.empty()) return;
    starts.push_back(tokens.size());
    ByteTokenizer::encode_append(text, &tokens);
  };
  for (const std::string& file : files) {
    std::string text = read_file(file);
    result.bytes_read += text.size();
    if (!text.empty() && text.back() != '\n') text += '\n';
    if (!separator) {
      add_document(text);
      continue;
    }
    size_t begin = 0;
    for (std::sregex_iterator m(text.begin(), text.end(), *separator), end; m != end; ++m) {
      const size_t at = static_cast<size_t>(m->position(0));
      add_document(std::string_view(text).substr(begin, at - begin));
      begin = at + static_cast<size_t>(m->length(0));
    }
    add_document(std::string_view(text).substr(begin));
  }
  if (tokens.empty()) input_error("prepare-text: the input files hold no text");

  const uint64_t n = tokens.size();
  uint64_t n_val = 0;
  if (val_fraction > 0) {
    n_val = static_cast<uint64_t>(std::llround(val_fraction * static_cast<double>(n)));
    if (n_val == 0) n_val = 1;
    if (n_val >= n)
      input_error("prepare-text: ", n, " tokens are too few to hold out a validation fraction of ",
                  val_fraction);
  }
  make_parent_dirs(out);
  if (n_val > 0) {
    const uint64_t cut = n - n_val;
    result.val_path = val_path_for(out);
    std::vector<uint32_t> val(tokens.begin() + static_cast<std::ptrdiff_t>(cut), tokens.end());
    std::vector<uint64_t> val_starts = {0};
    for (uint64_t s : starts)
      if (s > cut) val_starts.push_back(s - cut);
    write_token_file(result.val_path, val, width, val_starts);
    result.val_documents = val_starts.size();
    tokens.resize(cut);
    starts.erase(std::lower_bound(starts.begin(), starts.end(), cut), starts.end());
  }
  write_token_file(out, tokens, width, starts);
  result.train_tokens = tokens.size();
  result.val_tokens = n_val;
  result.train_documents = starts.size();

  if (log != nullptr) {
    std::ostringstream line;
    line << "prepare-text: " << files.size() << (files.size() == 1 ? " file, " : " files, ")
         << result.bytes_read << " bytes -> " << out << " (" << result.train_tokens
         << " tokens, " << result.train_documents
         << (result.train_documents == 1 ? " document" : " documents") << ", uint" << 8 * width
         << ")";
    if (n_val > 0)
      line << ", " << result.val_path << " (" << n_val << " tokens, " << result.val_documents
           << (result.val_documents == 1 ? " document)" : " documents)");
    line << ", byte-level vocab " << ByteTokenizer::kVocabSize << "\n";
    *log << line.str() << std::flush;
  }
  return result;
}

}  // namespace ringtrain
