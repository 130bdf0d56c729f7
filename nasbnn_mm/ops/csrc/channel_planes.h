// The (N, C, H, W) maps of the per-channel training kernels
// (activation_op.cpp, batch_norm_op.cpp): checks, and the work split by
// channel on torch's threads.
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

// Calls f(c) for every channel c, the channels split over torch's
// threads (a channel's planes all on one thread).
template <typename F>
void for_channels(const Planes& p, F f) {
  const int64_t grain =
      std::max<int64_t>(1, 16384 / std::max<int64_t>(p.n * p.hw, 1));
  at::parallel_for(0, p.c, grain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) f(c);
  });
}

}  // namespace nasbnn
