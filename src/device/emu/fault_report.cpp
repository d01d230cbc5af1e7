// The out-of-bounds report of the emulated device: a SIGSEGV/SIGBUS handler (on its own
// alternate stack, so a fiber stack that overflowed can still be reported) that names the
// guard page hit (past a device allocation, past shared memory, below a fiber stack) and the
// CUDA thread that was running, then ends the process with exit code 3. Faults that are not
// ours go to the handler that was there before.
#include <signal.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

#include "src/device/emu/emu_internal.h"

namespace ringtrain::gpu::emu {
namespace {

struct Guard {
  uintptr_t lo, hi;
  const char* what;
};
struct Guards {
  std::mutex mu;
  std::vector<Guard> list;  // shared memory and stack guards
};
Guards& guards() {
  static Guards* g = new Guards();  // never destroyed: used by the fault handler
  return *g;
}

struct sigaction g_old_segv {}, g_old_bus {};

void fault_handler(int sig, siginfo_t* info, void*) {
  const std::string where = describe_guard_hit(info->si_addr);
  if (!where.empty()) {
    std::string msg = "ringtrain emulated device: out-of-bounds access: " + where;
    const std::string who = current_thread_description();
    if (!who.empty()) msg += " (" + who + ")";
    msg += "\n";
    ssize_t w = write(2, msg.data(), msg.size());
    (void)w;
    _exit(3);
  }
  // Not ours: put back whatever handled it before (MPI's, or the default) and return; the
  // access executes again and reaches that handler.
  sigaction(sig, sig == SIGBUS ? &g_old_bus : &g_old_segv, nullptr);
}

}  // namespace

void register_guard(const void* lo, size_t bytes, const char* what) {
  Guards& g = guards();
  std::lock_guard<std::mutex> lock(g.mu);
  const uintptr_t l = reinterpret_cast<uintptr_t>(lo);
  g.list.push_back({l, l + bytes, what});
}

std::string describe_guard_hit(const void* addr) {
  // Called from the signal handler: no locks (the process ends right after).
  const std::string past_allocation = describe_allocation_guard_hit(addr);
  if (!past_allocation.empty()) return past_allocation;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  for (const Guard& g : guards().list)
    if (a >= g.lo && a < g.hi) return "access beyond " + std::string(g.what);
  return "";
}

void install_fault_handler() {
  static bool installed = false;
  thread_local bool alt_stack = false;
  if (!alt_stack) {
    // The handler must not run on a fiber stack that just overflowed.
    static thread_local std::vector<char> stack(64 * 1024);
    stack_t ss{};
    ss.ss_sp = stack.data();
    ss.ss_size = stack.size();
    sigaltstack(&ss, nullptr);
    alt_stack = true;
  }
  if (installed) return;
  installed = true;
#if defined(RINGTRAIN_EMU_ASAN)
  return;  // AddressSanitizer reports faults itself
#endif
  struct sigaction sa{};
  sa.sa_sigaction = &fault_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_old_segv);
  sigaction(SIGBUS, &sa, &g_old_bus);
}

}  // namespace ringtrain::gpu::emu
