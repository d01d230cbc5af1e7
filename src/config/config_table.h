// The one table of config keys. Parsing, --set overrides, dump_config, docs/CONFIG.md and the
// "did you mean" suggestions all read it, so a key added here is settable, dumped, documented
// and suggested at once.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/config/config.h"

namespace ringtrain {

enum class FieldType { kInt, kU64, kDouble, kBool, kString, kChoice };

// Allowed numeric interval; an empty bound is unbounded.
struct FieldRange {
  std::optional<double> lo, hi;
  bool lo_open = false;  // lo itself excluded
  bool hi_open = false;
};

struct ConfigField {
  std::string section;  // "" for the top-level keys (device)
  std::string key;
  FieldType type;
  std::function<void*(Config&)> ref;  // the member this key sets
  FieldRange range;                   // numbers
  std::vector<std::string> choices;   // kChoice: the allowed values
  bool non_empty = false;             // strings that may not be ""
  std::string allowed_doc;            // overrides the generated "allowed" text
  std::string doc;

  std::string name() const { return section.empty() ? key : section + "." + key; }
};

// Every key, in dump order (device first, then the sections in `config_sections()` order).
const std::vector<ConfigField>& config_fields();
// run, model, parallel, train, data, checkpoint, log.
const std::vector<std::string>& config_sections();
// The field named "section.key" (or "device"), or nullptr.
const ConfigField* find_config_field(const std::string& name);

// The value of `field` in `config` as a YAML scalar (what dump_config writes).
std::string config_field_text(const Config& config, const ConfigField& field);
// The allowed values in words: "> 0", "[0, 1)", "ring | ulysses | hybrid", ...
std::string config_field_allowed(const ConfigField& field);
// "int", "float", "bool", "string", ...
std::string config_field_type_name(const ConfigField& field);

// The model keys whose values differ ("model.d_model is 64 <a_label> but 128 <b_label>; ..."),
// "" when none. `ignore` names keys to skip; a trailing '*' skips a prefix ("rope_*").
std::string model_differences(const Config& a, const std::string& a_label, const Config& b,
                              const std::string& b_label, const std::vector<std::string>& ignore);

// Every key has the same value in both (Config::source is not a setting and is ignored).
bool same_settings(const Config& a, const Config& b);

// The key reference of docs/CONFIG.md: one Markdown table per section.
std::string config_reference_markdown();

}  // namespace ringtrain
