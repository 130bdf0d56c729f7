// AVX2 path: popcount by nibble lookup (pshufb), bytes summed with psadbw.
// Compiled per function with target attributes: the module still loads
// on CPUs without AVX2 (the dispatcher never calls this path there).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "binary_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace nasbnn {
namespace avx2_path {

#define NASBNN_TARGET __attribute__((target("avx2,popcnt")))
constexpr const char* kPathName = "avx2";

NASBNN_TARGET static inline __m256i popcount_bytes(__m256i v, __m256i lut,
                                                   __m256i low) {
  const __m256i lo = _mm256_and_si256(v, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo),
                         _mm256_shuffle_epi8(lut, hi));
}

struct Isa {
  static constexpr int kTile = 4;
  static constexpr int kBlocks = 1;

  template <int P, int B>
  NASBNN_TARGET static inline void tile(const uint64_t* x, int64_t base,
                                        int64_t pixel_stride,
                                        const Tap* taps, int num_taps,
                                        const uint64_t* w, int64_t,
                                        int64_t words, int32_t full,
                                        int32_t (*dots)[kLanes * B]) {
    static_assert(B == 1, "one weight block per tile");
    const __m256i lut = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2,
        3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
    // Byte counters take at most 8 per word: flush them every 31 words.
    __m256i bytes[P][2], sums[P][2];
    for (int i = 0; i < P; ++i)
      for (int h = 0; h < 2; ++h) bytes[i][h] = sums[i][h] = zero;
    int pending = 0;
    for (int t = 0; t < num_taps; ++t) {
      const uint64_t* xt = x + base + taps[t].x;
      const uint64_t* wt = w + taps[t].w;
      for (int64_t k = 0; k < words; ++k) {
        const __m256i w0 = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(wt + k * kLanes));
        const __m256i w1 = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(wt + k * kLanes + 4));
        for (int i = 0; i < P; ++i) {
          const __m256i xv = _mm256_set1_epi64x(
              static_cast<long long>(xt[i * pixel_stride + k]));
          bytes[i][0] = _mm256_add_epi8(
              bytes[i][0],
              popcount_bytes(_mm256_xor_si256(w0, xv), lut, low));
          bytes[i][1] = _mm256_add_epi8(
              bytes[i][1],
              popcount_bytes(_mm256_xor_si256(w1, xv), lut, low));
        }
        if (++pending == 31) {
          for (int i = 0; i < P; ++i)
            for (int h = 0; h < 2; ++h) {
              sums[i][h] = _mm256_add_epi64(
                  sums[i][h], _mm256_sad_epu8(bytes[i][h], zero));
              bytes[i][h] = zero;
            }
          pending = 0;
        }
      }
    }
    // The low 32 bits of the 4 + 4 uint64 sums, in lane order, as dots.
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256i fullv = _mm256_set1_epi32(full);
    for (int i = 0; i < P; ++i) {
      for (int h = 0; h < 2; ++h)
        sums[i][h] =
            _mm256_add_epi64(sums[i][h], _mm256_sad_epu8(bytes[i][h], zero));
      const __m256i lo = _mm256_permutevar8x32_epi32(sums[i][0], even);
      const __m256i hi = _mm256_permutevar8x32_epi32(sums[i][1], even);
      const __m256i cnt = _mm256_blend_epi32(lo, hi, 0xF0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dots[i]),
                          _mm256_sub_epi32(fullv, _mm256_add_epi32(cnt, cnt)));
    }
  }

#include "epilogue_avx.inc"

  template <int P, int B>
  NASBNN_TARGET static inline void epilogue(const ConvArgs& a,
                                            int64_t pixel, const float* res,
                                            int64_t res_step,
                                            const EpilogueSetup& s,
                                            const int32_t (*dots)[kLanes]) {
    static_assert(B == 1, "one weight block per tile");
    epilogue8<P>(a, pixel, res, res_step, s, dots);
  }

  NASBNN_TARGET static inline uint64_t pack_word(const float* x,
                                                 const float* bias, int n) {
    uint64_t word = 0;
    int j = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
      __m256 v = _mm256_loadu_ps(x + j);
      if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
      const int m = _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ));
      word |= static_cast<uint64_t>(static_cast<unsigned>(m)) << j;
    }
    for (; j < n; ++j) {
      const float v = bias ? x[j] + bias[j] : x[j];
      word |= static_cast<uint64_t>(v >= 0.f) << j;
    }
    return word;
  }
};

#include "conv_driver.inc"

#undef NASBNN_TARGET

}  // namespace avx2_path

const Kernels* avx2_kernels() { return &avx2_path::kKernels; }

}  // namespace nasbnn

#else

namespace nasbnn {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace nasbnn

#endif
