#pragma once

#include <string>
#include <vector>

#include "binary_kernels.h"

namespace nasbnn {

// Paths this CPU and build can run, from slowest to fastest.
std::vector<std::string> available_kernel_paths();
// The path in use; resolved on first use from NASBNN_BINARY_KERNEL.
const Kernels& active_kernels();
std::string kernel_path();
// Force a path ('auto' = the fastest available); returns the path taken.
// Raises if the CPU cannot run it.
std::string set_kernel_path(const std::string& path);
// Whether the CPU runs AVX-512 VNNI (the AVX-512 path's 8-bit stem).
bool cpu_has_vnni();

}  // namespace nasbnn
