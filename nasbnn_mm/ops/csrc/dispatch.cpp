// Runtime choice of the kernel path: the best the CPU runs, unless forced
// by NASBNN_BINARY_KERNEL=scalar|avx2|avx512|auto or set_kernel_path().
#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace nasbnn {
namespace {

bool cpu_has(const std::string& path) {
#if defined(__x86_64__) && defined(__GNUC__)
  // NOTE: __builtin_cpu_supports also checks that the OS saves the wider
  // registers (XCR0), not only the CPUID bits.
  if (path == "avx2")
    return avx2_kernels() && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("popcnt");
  if (path == "avx512")
    return avx512_kernels() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512vpopcntdq") &&
           __builtin_cpu_supports("avx512ifma");
#endif
  return path == "scalar";
}

const Kernels* kernels_of(const std::string& path) {
  if (path == "avx512") return avx512_kernels();
  if (path == "avx2") return avx2_kernels();
  return &scalar_kernels();
}

const Kernels* resolve(const std::string& request) {
  if (request.empty() || request == "auto") {
    for (const char* path : {"avx512", "avx2"})
      if (cpu_has(path)) return kernels_of(path);
    return &scalar_kernels();
  }
  if (request != "scalar" && request != "avx2" && request != "avx512")
    throw std::invalid_argument("binary kernel path '" + request +
                                "' not in {auto, scalar, avx2, avx512}");
  if (!cpu_has(request)) {
    std::string have;
    for (const auto& p : available_kernel_paths())
      have += (have.empty() ? "" : ", ") + p;
    throw std::runtime_error("binary kernel path '" + request +
                             "' is not supported by this CPU/build; "
                             "available: " + have);
  }
  return kernels_of(request);
}

std::atomic<const Kernels*> g_active{nullptr};

}  // namespace

bool cpu_has_vnni() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

std::vector<std::string> available_kernel_paths() {
  std::vector<std::string> paths;
  for (const char* path : {"scalar", "avx2", "avx512"})
    if (cpu_has(path)) paths.emplace_back(path);
  return paths;
}

const Kernels& active_kernels() {
  const Kernels* k = g_active.load();
  if (!k) {
    const char* env = std::getenv("NASBNN_BINARY_KERNEL");
    k = resolve(env ? env : "");
    g_active.store(k);
  }
  return *k;
}

std::string kernel_path() { return active_kernels().name; }

std::string set_kernel_path(const std::string& path) {
  const Kernels* k = resolve(path);
  g_active.store(k);
  return k->name;
}

}  // namespace nasbnn
