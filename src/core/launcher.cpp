#include "src/core/launcher.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace ringtrain {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace

LauncherInfo launcher_info() {
  LauncherInfo info;
  info.job_id = env("SLURM_JOB_ID");
  if (!info.job_id.empty()) {
    info.kind = "slurm";
    info.job_name = env("SLURM_JOB_NAME");
    info.step_id = env("SLURM_STEP_ID");
    info.array_job_id = env("SLURM_ARRAY_JOB_ID");
    info.array_task_id = env("SLURM_ARRAY_TASK_ID");
    info.nodelist = env("SLURM_JOB_NODELIST");
    info.restart_count = std::atoi(env("SLURM_RESTART_COUNT").c_str());
  } else if (!env("OMPI_COMM_WORLD_SIZE").empty()) {
    info.kind = "mpirun";
  } else {
    info.kind = "none";
  }
  return info;
}

std::string launcher_line(const LauncherInfo& info) {
  if (info.kind != "slurm") return "launcher: " + info.kind;
  std::string s = "launcher: slurm job " + info.job_id;
  if (!info.array_job_id.empty()) s += " (array " + info.array_job_id + "_" + info.array_task_id + ")";
  s += " '" + info.job_name + "'";
  if (!info.step_id.empty()) s += " step " + info.step_id;
  s += ", restart " + std::to_string(info.restart_count);
  if (!info.nodelist.empty()) s += ", nodes " + info.nodelist;
  return s;
}

std::string launcher_json(const LauncherInfo& info) {
  std::string s = "{\"launcher\": " + json_string(info.kind);
  if (info.kind == "slurm") {
    s += ", \"slurm_job_id\": " + json_string(info.job_id) + ", \"slurm_job_name\": " + json_string(info.job_name) +
         ", \"slurm_step_id\": " + json_string(info.step_id) +
         ", \"slurm_restart_count\": " + json_string(std::to_string(info.restart_count)) +
         ", \"slurm_nodelist\": " + json_string(info.nodelist);
    if (!info.array_job_id.empty())
      s += ", \"slurm_array_job_id\": " + json_string(info.array_job_id) +
           ", \"slurm_array_task_id\": " + json_string(info.array_task_id);
  }
  return s + "}";
}

void announce_launcher(const std::string& out_dir) {
  const LauncherInfo info = launcher_info();
  std::printf("%s\n", launcher_line(info).c_str());
  std::fflush(stdout);
  // Only under Slurm: a line without "step" would be noise in every plain run's metrics.
  if (out_dir.empty() || info.kind != "slurm") return;
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  std::ofstream f(out_dir + "/metrics.jsonl", std::ios::app);
  if (f) f << launcher_json(info) << '\n';
}

}  // namespace ringtrain
