#include "src/checkpoint/checkpoint_files.h"

#include <fcntl.h>
#include <mpi.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "parallel/mesh.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "src/model/params.h"

namespace fs = std::filesystem;

namespace ringtrain {
namespace {

// A lock holder on this host is gone when its pid no longer exists, or exists only as a zombie
// (exited, not yet reaped: a rank whose launcher died is reparented to an init that may never
// reap it, as in containers).
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t close = line.rfind(')');  // the command name may hold spaces and parentheses
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

constexpr const char* kPartialSuffix = ".partial";

// Parses "step-000100.h5" -> 100; -1 for anything else.
int64_t step_of(const std::string& name) {
  if (name.size() < 9 || name.rfind("step-", 0) != 0 || name.substr(name.size() - 3) != ".h5") return -1;
  const std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoll(digits);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

void bcast_string(std::string* s, MPI_Comm comm) {
  long long n = static_cast<long long>(s->size());
  MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, comm));
  s->resize(static_cast<size_t>(n));
  if (n > 0) MPI_CHECK(MPI_Bcast(s->data(), static_cast<int>(n), MPI_CHAR, 0, comm));
}

}  // namespace

std::string checkpoint_file_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "step-%06lld.h5", static_cast<long long>(step));
  return buf;
}

std::vector<CheckpointEntry> list_checkpoints(const std::string& dir) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const int64_t s = step_of(e.path().filename().string());
    if (s >= 0) out.push_back({s, e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.step < b.step; });
  return out;
}

std::string newest_valid_checkpoint(const std::string& dir) {
  // The `latest` pointer first (it names the last completed save, even if a run resumed from
  // an older checkpoint left higher-numbered files behind), then the files by step.
  std::ifstream in(dir + "/latest");
  std::string name;
  if (in && std::getline(in, name) && step_of(name) >= 0) {
    const std::string path = dir + "/" + name;
    std::error_code ec;
    if (fs::exists(path, ec)) {
      const std::string why = checkpoint_problem(path);
      if (why.empty()) return path;
      warn("skipping damaged checkpoint " + path + ": " + why);
    }
  }
  const std::vector<CheckpointEntry> all = list_checkpoints(dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (it->path == dir + "/" + name) continue;
    const std::string why = checkpoint_problem(it->path);
    if (why.empty()) return it->path;
    warn("skipping damaged checkpoint " + it->path + ": " + why);
  }
  return "";
}

std::string resolve_checkpoint(const std::string& spec) {
  std::error_code ec;
  if (fs::is_directory(spec, ec)) {
    const std::string p = newest_valid_checkpoint(spec);
    if (p.empty()) input_error("no valid checkpoint in directory ", spec);
    return p;
  }
  return spec;
}

std::string resolve_checkpoint(const std::string& spec, Mesh& mesh, bool allow_none) {
  std::string path, problem;
  if (mesh.rank() == 0) {
    try {
      std::error_code ec;
      if (!allow_none)
        path = resolve_checkpoint(spec);
      else if (fs::is_directory(spec, ec))
        path = newest_valid_checkpoint(spec);
      else if (fs::exists(spec, ec))
        path = spec;
    } catch (const Error& e) {
      problem = e.what();
    }
  }
  bcast_string(&problem, mesh.world_comm());
  if (!problem.empty()) {
    collective_input_error(problem);
  }
  bcast_string(&path, mesh.world_comm());
  return path;
}

std::string save_checkpoint(const Config& config, Mesh& mesh, const ParamStore& params, const MomentsView& moments,
                            const CheckpointState& state, SaveTiming* timing) {
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  const std::string dir = config.checkpoint.dir;
  RT_CHECK(!dir.empty(), "save_checkpoint without checkpoint.dir");
  const std::string name = checkpoint_file_name(state.step);
  const std::string path = dir + "/" + name;
  if (mesh.rank() == 0) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fault("checkpoint.dir ", dir, ": cannot create: ", ec.message());
    // Leftovers of an interrupted save are never loaded; clean them now.
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string f = e.path().filename().string();
      if (f.size() > std::strlen(kPartialSuffix) &&
          f.compare(f.size() - std::strlen(kPartialSuffix), std::string::npos, kPartialSuffix) == 0) {
        std::error_code rm;
        fs::remove(e.path(), rm);
      }
    }
  }
  // A full disk is found before writing, not halfway: weights and both moments in fp32 plus
  // about 1% for chunk checksums and metadata.
  std::string problem;
  if (mesh.rank() == 0) {
    int64_t elems = 0;
    for (const Param& p : params.params()) elems += shape_numel(p.info.global_shape);
    const uint64_t need = static_cast<uint64_t>(elems) * 12 * 101 / 100 + (uint64_t{1} << 20);
    struct statvfs st {};
    if (::statvfs(dir.c_str(), &st) == 0) {
      const uint64_t avail = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
      if (avail < need)
        problem = "checkpoint.dir " + dir + " has " + std::to_string(avail) + " bytes free; saving step " +
                  std::to_string(state.step) + " needs about " + std::to_string(need) +
                  " bytes (the previous checkpoint is intact)";
    }
  }
  bcast_string(&problem, mesh.world_comm());
  if (!problem.empty()) {
    collective_input_error(problem);
  }
  const auto t_write = clock::now();
  write_checkpoint_file(path, config, mesh, params, moments, state);
  if (timing) timing->write_s = since(t_write);
  const auto t_sync = clock::now();
  if (mesh.rank() == 0) {
    fsync_path(path);
    const std::string tmp = dir + "/latest.tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << name << '\n';
      if (!out) fault("checkpoint: cannot write ", tmp);
    }
    fsync_path(tmp);
    std::error_code ec;
    fs::rename(tmp, dir + "/latest", ec);
    if (ec) fault("checkpoint: cannot rename ", tmp, " to ", dir, "/latest: ", ec.message());
    fsync_path(dir);
    if (timing) timing->sync_s = since(t_sync);
    const int keep = config.checkpoint.keep;
    if (keep > 0) {
      std::vector<CheckpointEntry> all = list_checkpoints(dir);
      int64_t excess = static_cast<int64_t>(all.size()) - keep;
      for (const CheckpointEntry& e : all) {
        if (excess <= 0) break;
        if (e.path == path) continue;
        std::error_code rm;
        fs::remove(e.path, rm);
        --excess;
      }
    }
  }
  MPI_CHECK(MPI_Barrier(mesh.world_comm()));
  return path;
}

CheckpointLock::~CheckpointLock() { release(); }

void CheckpointLock::acquire(const std::string& dir, Mesh& mesh) {
  std::string problem;
  const std::string path = dir + "/LOCK";
  if (mesh.rank() == 0) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    const std::string me = host_name();
    for (int attempt = 0; attempt < 3 && problem.empty(); ++attempt) {
      const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd >= 0) {
        const std::string line = me + " " + std::to_string(::getpid()) + "\n";
        const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
        ::close(fd);
        if (!ok) problem = "cannot write the lock file " + path;
        held_ = ok;
        break;
      }
      if (errno != EEXIST) {
        problem = "cannot create the lock file " + path + ": " + std::strerror(errno);
        break;
      }
      std::ifstream in(path);
      std::string host;
      long long pid = -1;
      in >> host >> pid;
      bool dead = false;
      if (host == me && pid > 0) dead = process_gone(static_cast<pid_t>(pid));
      const char* take = std::getenv("RINGTRAIN_TAKE_OVER_LOCK");
      const bool forced = take && std::string(take) == "1";
      if (dead || forced || host.empty()) {
        warn("checkpoint.dir " + dir + ": taking over the lock of " +
             (host.empty() ? std::string("an unreadable lock file") : host + " pid " + std::to_string(pid)) +
             (dead ? " (that process is gone)" : forced ? " (RINGTRAIN_TAKE_OVER_LOCK=1)" : ""));
        fs::remove(path, ec);
        continue;
      }
      problem = "checkpoint.dir " + dir + " is in use by another job (host " + host + ", pid " + std::to_string(pid) +
                ", lock file " + path + "); if that job is dead, delete the lock file or set RINGTRAIN_TAKE_OVER_LOCK=1";
    }
    if (problem.empty() && !held_) problem = "cannot take the lock file " + path;
  }
  bcast_string(&problem, mesh.world_comm());
  if (!problem.empty()) {
    collective_input_error(problem);
  }
  path_ = path;
}

void CheckpointLock::release() {
  if (!held_) return;
  held_ = false;
  std::ifstream in(path_);
  std::string host;
  long long pid = -1;
  in >> host >> pid;
  in.close();
  if (host == host_name() && pid == ::getpid()) {
    std::error_code ec;
    fs::remove(path_, ec);
  }
}

}  // namespace ringtrain
