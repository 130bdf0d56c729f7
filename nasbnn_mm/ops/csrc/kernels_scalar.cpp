// Portable path: plain C++ and __builtin_popcountll (no target attribute;
// without -mpopcnt the compiler emits its generic popcount).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "binary_kernels.h"

namespace nasbnn {
namespace scalar_path {

#define NASBNN_TARGET
constexpr const char* kPathName = "scalar";

struct Isa {
  static constexpr int kTile = 4;
  static constexpr int kBlocks = 1;

  template <int P, int B>
  static inline void tile(const uint64_t* x, int64_t base,
                          int64_t pixel_stride, const Tap* taps,
                          int num_taps, const uint64_t* w, int64_t,
                          int64_t words, int32_t full,
                          int32_t (*dots)[kLanes * B]) {
    static_assert(B == 1, "one weight block per tile");
    int32_t counts[P][kLanes] = {};
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
    for (int i = 0; i < P; ++i)
      for (int l = 0; l < kLanes; ++l) dots[i][l] = full - 2 * counts[i][l];
  }

  static inline float residual_value(const ConvArgs& a, const float* res,
                                     int64_t c) {
    if (!a.res_pool) return res[c];
    const float* low = res + a.res_w * a.res_channels;
    float sum = 0.f;
    sum = sum + res[c];
    sum = sum + res[a.res_channels + c];
    sum = sum + low[c];
    sum = sum + low[a.res_channels + c];
    return sum * 0.25f;  // = sum / 4, the same bits
  }

  template <int P, int B>
  static inline void epilogue(const ConvArgs& a, int64_t pixel,
                              const float* res, int64_t res_step,
                              const EpilogueSetup& s,
                              const int32_t (*dots)[kLanes]) {
    static_assert(B == 1, "one weight block per tile");
    const int64_t oc0 = s.oc0;
    const int lanes = s.lanes;
    for (int i = 0; i < P; ++i) {
      float* out = a.out + (pixel + i) * a.out_channels + oc0;
      int64_t r = s.r0;
      uint8_t byte = 0;
      for (int l = 0; l < lanes; ++l) {
        const int64_t oc = oc0 + l;
        float v = static_cast<float>(dots[i][l]);
        if (a.scale) v = v * a.scale[oc];
        if (a.bias) v = v + a.bias[oc];
        if (a.residual) {
          v = v + residual_value(a, res + i * res_step, r);
          if (++r == a.res_channels) r = 0;
        }
        if (a.act_weight) {
          v = v + a.act_bias_in[oc];
          v = v > 0.f ? v : v * a.act_weight[oc];
          v = v + a.act_bias_out[oc];
        }
        if (a.pool_out) {
          const int64_t p = pixel + i;
          float* pooled = a.out + (p / 2) * a.out_channels + oc;
          *pooled = pool_add(static_cast<int>(p % 2) + 2 * a.pool_row_odd,
                             *pooled, v);
        } else {
          out[l] = v;
        }
        const float shifted = a.pack_bias ? v + a.pack_bias[oc] : v;
        byte |= static_cast<uint8_t>((shifted >= 0.f) << l);
      }
      if (a.packed_out)
        a.packed_out[(pixel + i) * a.pack_pixel_bytes + s.packed_lo] = byte;
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
