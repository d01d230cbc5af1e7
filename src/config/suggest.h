// "Did you mean ...?" for misspelled config keys, subcommands and flags: the nearest candidate
// by edit distance, if it is close enough to be a plausible typo.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ringtrain {

// Optimal-string-alignment distance: insertions, deletions, substitutions and transpositions
// of neighbours each cost 1, so "trian" is one edit from "train".
std::size_t edit_distance(const std::string& a, const std::string& b);

// The candidate nearest to `word`, or "" when none is within a typo's reach (1 edit for words
// up to 3 characters, 2 up to 7, 3 beyond). Ties go to the earlier candidate.
std::string nearest_match(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'X'?)" for the nearest match, or "" when there is none.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace ringtrain
