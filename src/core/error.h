// One way to fail. Every check a user can trigger throws ringtrain::Error; the entry point
// turns it into `ringtrain: error: <what> (rank R)` and exit code 2 (bad input) or an
// MPI_Abort of the whole job (a fault), so no rank is ever left waiting in a collective.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ringtrain {

enum class ErrorKind {
  kInput,  // bad config, data file, checkpoint or command line: exit code 2
  kFault,  // anything else: the job is aborted
};

// `collective`: raised identically on every rank (config validation, a problem rank 0 found
// and broadcast), so rank 0 alone prints it and every rank exits 2 without aborting the job.
// Any other error is one rank's own, and that rank ends the whole job.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what, bool collective = false)
      : std::runtime_error(what), kind_(kind), collective_(collective) {}
  ErrorKind kind() const { return kind_; }
  bool collective() const { return collective_; }

 private:
  ErrorKind kind_;
  bool collective_;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Input errors: the user can fix them (exit 2).
template <typename... Args>
[[noreturn]] void input_error(Args&&... args) {
  throw Error(ErrorKind::kInput, detail::concat(std::forward<Args>(args)...));
}
// An input error every rank raises identically (see Error).
template <typename... Args>
[[noreturn]] void collective_input_error(Args&&... args) {
  throw Error(ErrorKind::kInput, detail::concat(std::forward<Args>(args)...), true);
}
// Runs `body`; the input errors it raises are collective (every rank runs the same checks on
// the same inputs: the command line, the config).
template <typename F>
decltype(auto) collectively(F&& body) {
  try {
    return body();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInput) throw Error(ErrorKind::kInput, e.what(), true);
    throw;
  }
}
// Faults: broken invariants, library failures (abort the job).
template <typename... Args>
[[noreturn]] void fault(Args&&... args) {
  throw Error(ErrorKind::kFault, detail::concat(std::forward<Args>(args)...));
}

}  // namespace ringtrain

// RT_CHECK(cond, parts...): a fault naming the file and line when cond is false.
#define RT_CHECK(cond, ...)                                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      ::ringtrain::fault(__VA_ARGS__, " [check `" #cond "` failed at ", __FILE__, ":",  \
                         __LINE__, "]");                                                 \
  } while (0)

// RT_INPUT_CHECK(cond, parts...): an input error (exit 2) when cond is false.
#define RT_INPUT_CHECK(cond, ...)                       \
  do {                                                  \
    if (!(cond)) ::ringtrain::input_error(__VA_ARGS__); \
  } while (0)

// MPI_CHECK(call): every MPI call, naming the call, file and line.
#define MPI_CHECK(call)                                                                 \
  do {                                                                                  \
    int rt_mpi_rc_ = (call);                                                            \
    if (rt_mpi_rc_ != MPI_SUCCESS) ::ringtrain::detail::mpi_failed(rt_mpi_rc_, #call,  \
                                                                   __FILE__, __LINE__); \
  } while (0)

namespace ringtrain::detail {
[[noreturn]] void mpi_failed(int rc, const char* call, const char* file, int line);
}
