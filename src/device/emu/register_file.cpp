// Registers x threads against the register file at launch, as the device checks them. The
// emulated kernel is host code and has no registers, so the counts are the real build's: ptxas's
// registers per thread for every kernel and architecture (kernel_registers.inc, written by
// scripts/check-gpu-static --write-table, which fails while the table differs from ptxas). A
// kernel is found in it by its name, read from the symbol table of the binary it is in.
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/device/emu/emu_internal.h"

namespace ringtrain::gpu::emu {

namespace {

struct KernelRegisters {
  const char* key;
  int sm80;
  int sm90a;
};
constexpr KernelRegisters kKernelRegisters[] = {
#include "src/device/emu/kernel_registers.inc"
};

// sm_80 and sm_90a alike (CUDA C++ Programming Guide, "Technical Specifications per Compute
// Capability"): 64K 32-bit registers per block, at most 255 per thread, allocated per warp in
// units of 256.
constexpr uint64_t kRegistersPerBlock = 65536;
constexpr int kRegistersPerThread = 255;
constexpr uint64_t kWarpAllocationUnit = 256;

// Function symbols of one loaded ELF file: start address (file-relative) -> mangled name.
using Symbols = std::unordered_map<uintptr_t, std::string>;

bool read_at(int fd, void* dst, size_t bytes, uint64_t offset) {
  return pread(fd, dst, bytes, static_cast<off_t>(offset)) == static_cast<ssize_t>(bytes);
}

// The full symbol table (.symtab), which also has the functions of internal linkage that the
// dynamic symbols dladdr reads leave out: a kernel taking a type from an anonymous namespace
// is one.
Symbols read_function_symbols(const std::string& path) {
  Symbols out;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  Elf64_Ehdr eh{};
  if (read_at(fd, &eh, sizeof eh, 0) && std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
      eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_shentsize == sizeof(Elf64_Shdr)) {
    std::vector<Elf64_Shdr> sections(eh.e_shnum);
    if (read_at(fd, sections.data(), sections.size() * sizeof(Elf64_Shdr), eh.e_shoff)) {
      for (const Elf64_Shdr& s : sections) {
        if (s.sh_type != SHT_SYMTAB || s.sh_link >= sections.size()) continue;
        const Elf64_Shdr& strtab = sections[s.sh_link];
        std::vector<Elf64_Sym> syms(s.sh_size / sizeof(Elf64_Sym));
        std::vector<char> names(strtab.sh_size + 1, '\0');
        if (!read_at(fd, syms.data(), syms.size() * sizeof(Elf64_Sym), s.sh_offset) ||
            !read_at(fd, names.data(), strtab.sh_size, strtab.sh_offset))
          continue;
        for (const Elf64_Sym& sym : syms)
          if (ELF64_ST_TYPE(sym.st_info) == STT_FUNC && sym.st_value != 0 && sym.st_name < strtab.sh_size)
            out.emplace(sym.st_value, names.data() + sym.st_name);
      }
    }
  }
  close(fd);
  return out;
}

struct LoadedFile {
  const void* address = nullptr;
  std::string path;
  uintptr_t bias = 0;
  bool found = false;
};

int find_loaded_file(dl_phdr_info* info, size_t, void* data) {
  auto* f = static_cast<LoadedFile*>(data);
  const auto a = reinterpret_cast<uintptr_t>(f->address);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (a >= lo && a < lo + ph.p_memsz) {
      f->path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
      f->bias = info->dlpi_addr;
      f->found = true;
      return 1;
    }
  }
  return 0;
}

// The demangled name, without return type and parameters, that the table is keyed by.
std::string kernel_key(const std::string& demangled) {
  std::string s = demangled.rfind("void ", 0) == 0 ? demangled.substr(5) : demangled;
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    else if (s[i] == '>') --depth;
    else if (s[i] == '(' && depth == 0 && s.compare(i, 21, "(anonymous namespace)") != 0) return s.substr(0, i);
  }
  return s;
}

}  // namespace

std::string mangled_symbol(const void* fn) {
  Dl_info info{};
  if (dladdr(fn, &info) && info.dli_sname && info.dli_saddr == fn) return info.dli_sname;
  LoadedFile file;
  file.address = fn;
  dl_iterate_phdr(find_loaded_file, &file);
  if (!file.found) return "";
  static std::mutex mu;
  static std::map<std::string, Symbols> files;
  std::lock_guard<std::mutex> lock(mu);
  auto it = files.find(file.path);
  if (it == files.end()) it = files.emplace(file.path, read_function_symbols(file.path)).first;
  auto sym = it->second.find(reinterpret_cast<uintptr_t>(fn) - file.bias);
  return sym == it->second.end() ? "" : sym->second;
}

std::string demangled_symbol(const void* fn) {
  const std::string mangled = mangled_symbol(fn);
  if (mangled.empty()) return "";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> dem(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && dem ? dem.get() : mangled;
}

Status check_registers(const void* kernel, uint64_t threads) {
  static std::mutex mu;
  static std::map<const void*, std::pair<std::string, const KernelRegisters*>> known;
  std::pair<std::string, const KernelRegisters*> k;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = known.find(kernel);
    if (it == known.end()) {
      const std::string key = kernel_key(demangled_symbol(kernel));
      const KernelRegisters* row = nullptr;
      for (const KernelRegisters& r : kKernelRegisters)
        if (key == r.key) row = &r;
      it = known.emplace(kernel, std::make_pair(key, row)).first;
    }
    k = it->second;
  }
  if (!k.second)
    return fail(Status::kInvalidDeviceFunction,
                "kernel " + (k.first.empty() ? std::string("at an address without a symbol") : k.first) +
                    " has no register count from ptxas (src/device/emu/kernel_registers.inc; a new kernel: "
                    "scripts/check-gpu-static --write-table)");
  const int per_thread = arch_now() == Arch::kSm80 ? k.second->sm80 : k.second->sm90a;
  const uint64_t per_warp = round_up(static_cast<uint64_t>(per_thread) * 32, kWarpAllocationUnit);
  const uint64_t need = per_warp * ((threads + 31) / 32);
  if (per_thread > kRegistersPerThread || need > kRegistersPerBlock)
    return fail(Status::kLaunchOutOfResources,
                "block of " + std::to_string(threads) + " threads needs " + std::to_string(need) + " registers (" +
                    std::to_string(per_thread) + " per thread on " + arch_name(arch_now()) +
                    ", ptxas), above the register file's " + std::to_string(kRegistersPerBlock));
  return Status::kSuccess;
}

}  // namespace ringtrain::gpu::emu
