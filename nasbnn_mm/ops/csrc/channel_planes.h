// The (N, C, H, W) maps of the per-channel training kernels
// (activation_op.cpp, batch_norm_op.cpp, pool_op.cpp): checks, and the
// work split by blocks of channels on torch's threads.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>

#include "ops.h"

namespace nasbnn {

// Rows of a map: plane (n, c) at data + (n * C + c) * HW.
struct Planes {
  int64_t n, c, hw;
};

inline Planes check_map(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat &&
                  t.dim() == 4 && t.is_contiguous(),
              name, ": expected a contiguous (N, C, H, W) CPU float32 map, "
              "got ", t.scalar_type(), " of shape ", t.sizes());
  return {t.size(0), t.size(1), t.size(2) * t.size(3)};
}

// The map of a backward and its gradient, checked to match.
inline Planes check_grad(const Tensor& grad, const Tensor& x,
                         const char* name) {
  const Planes p = check_map(x, name);
  check_map(grad, name);
  TORCH_CHECK(grad.sizes() == x.sizes(), name, ": grad ", grad.sizes(),
              " and x ", x.sizes(), " differ");
  return p;
}

// Values of a block of channels (all N planes): 256 KB of float32.
constexpr int64_t kBlockValues = 65536;

// Calls f(c0, c1) for blocks [c0, c1) of channels whose N planes hold at
// most kBlockValues values (at least one channel), split over torch's
// threads.
template <typename F>
void for_channel_blocks(const Planes& p, F f) {
  const int64_t block =
      std::max<int64_t>(1, kBlockValues / std::max<int64_t>(p.n * p.hw, 1));
  at::parallel_for(0, p.c, block, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; c += block)
      f(c, std::min(end, c + block));
  });
}

// Calls f(c, o) for the planes (n, c) at o = (n * C + c) * HW of channels
// [c0, c1), in memory order (sample by sample): a contiguous run of
// planes per sample, where a channel's planes alone lie C * HW apart.
template <typename F>
inline void for_block_planes(const Planes& p, int64_t c0, int64_t c1, F f) {
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t c = c0; c < c1; ++c) f(c, (n * p.c + c) * p.hw);
}

// Calls f(c, o) for every plane: blocks of channels on torch's threads,
// each in memory order, so each channel's planes come in order of n on
// one thread (its sums do not depend on the threads).
template <typename F>
void for_planes(const Planes& p, F f) {
  for_channel_blocks(p, [&](int64_t c0, int64_t c1) {
    for_block_planes(p, c0, c1, f);
  });
}

}  // namespace nasbnn
