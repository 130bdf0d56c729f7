// Portable path: plain C++ and __builtin_popcountll (no target attribute;
// without -mpopcnt the compiler emits its generic popcount).
#include <algorithm>
#include <cstdint>

#include "binary_kernels.h"

namespace nasbnn {
namespace scalar_path {

#define NASBNN_TARGET
constexpr const char* kPathName = "scalar";

struct Isa {
  static constexpr int kTile = 4;

  template <int P>
  static inline void tile(const uint64_t* x, int64_t base,
                          int64_t pixel_stride, const Tap* taps,
                          int num_taps, const uint64_t* w, int64_t words,
                          int32_t (*counts)[kLanes]) {
    for (int i = 0; i < P; ++i)
      for (int l = 0; l < kLanes; ++l) counts[i][l] = 0;
    for (int t = 0; t < num_taps; ++t) {
      const uint64_t* xt = x + base + taps[t].x;
      const uint64_t* wt = w + taps[t].w;
      for (int64_t k = 0; k < words; ++k) {
        const uint64_t* wk = wt + k * kLanes;
        for (int i = 0; i < P; ++i) {
          const uint64_t xv = xt[i * pixel_stride + k];
          for (int l = 0; l < kLanes; ++l)
            counts[i][l] += __builtin_popcountll(xv ^ wk[l]);
        }
      }
    }
  }

  static inline void epilogue(const ConvArgs& a, int64_t pixel, int64_t oc0,
                              int lanes, const int32_t* counts,
                              int64_t num_taps) {
    const int32_t full = static_cast<int32_t>(a.in_channels_g * num_taps);
    float* out = a.out + pixel * a.out_channels + oc0;
    const float* res =
        a.residual ? a.residual + pixel * a.res_channels : nullptr;
    int64_t r = a.residual ? oc0 % a.res_channels : 0;
    for (int l = 0; l < lanes; ++l) {
      const int64_t oc = oc0 + l;
      float v = static_cast<float>(full - 2 * counts[l]);
      if (a.scale) v = v * a.scale[oc];
      if (a.bias) v = v + a.bias[oc];
      if (res) {
        v = v + res[r];
        if (++r == a.res_channels) r = 0;
      }
      if (a.act_weight) {
        v = v + a.act_bias_in[oc];
        v = v > 0.f ? v : v * a.act_weight[oc];
        v = v + a.act_bias_out[oc];
      }
      out[l] = v;
    }
  }

  static inline uint64_t pack_word(const float* x, const float* bias,
                                   int n) {
    uint64_t word = 0;
    for (int j = 0; j < n; ++j) {
      const float v = bias ? x[j] + bias[j] : x[j];
      word |= static_cast<uint64_t>(v >= 0.f) << j;
    }
    return word;
  }
};

#include "conv_driver.inc"

#undef NASBNN_TARGET

}  // namespace scalar_path

const Kernels& scalar_kernels() { return scalar_path::kKernels; }

}  // namespace nasbnn
