// Sums and selects of the training kernels (weight_norm_op.cpp,
// activation_op.cpp). Sums run in kLanesSum interleaved partial sums, so
// their loops vectorize without reassociation and give the same result on
// every instruction set.
#pragma once

#include <cstdint>
#include <cstring>

namespace nasbnn {

constexpr int kLanesSum = 16;

// Calls f(i, lane) for i in [0, n), lane = i % kLanesSum.
template <typename F>
inline void for_lanes(int64_t n, F f) {
  int64_t i = 0;
  for (; i + kLanesSum <= n; i += kLanesSum)
    for (int j = 0; j < kLanesSum; ++j) f(i + j, j);
  for (int j = 0; i < n; ++i, ++j) f(i, j);
}

// kLanesSum partial sums, added up in a fixed order by total().
struct LaneAcc {
  float v[kLanesSum] = {};
  float total() {
    for (int w = kLanesSum / 2; w > 0; w /= 2)
      for (int j = 0; j < w; ++j) v[j] += v[j + w];
    return v[0];
  }
};

// Sum of f(i), i in [0, n).
template <typename F>
inline float lane_sum(int64_t n, F f) {
  LaneAcc acc;
  for_lanes(n, [&](int64_t i, int lane) { acc.v[lane] += f(i); });
  return acc.total();
}

// x where keep, else +0, by a bit mask. NOTE: written as a select the
// compiler keeps a branch (it may not assume the operands trap-free),
// mispredicted on a large share of the values, and no vector loop.
inline float keep_if(bool keep, float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits &= 0u - static_cast<uint32_t>(keep);
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}

}  // namespace nasbnn
