// AVX-512 path: VPOPCNTQ counts 8 output channels per instruction, and
// VPMADD52LUQ (AVX-512 IFMA) adds -2 x each count to the dot product in
// the same instruction that accumulates it.
// Compiled per function with target attributes: the module still loads
// on CPUs without AVX-512 (the dispatcher never calls this path there).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "binary_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace nasbnn {
namespace avx512_path {

#define NASBNN_TARGET \
  __attribute__((target("avx512f,avx512vpopcntdq,avx512ifma,prfchw")))
constexpr const char* kPathName = "avx512";

struct Isa {
  static constexpr int kTile = 8;
  static constexpr int kBlocks = 2;

  // acc[i][j] -= 2 * popcount(x XOR w) over the taps and the words (W
  // words per pixel and tap; 0: `words`, known at run time only), modulo
  // 2^52 per term: VPMADD52LUQ adds the low 52 bits of count * (2^52 - 2),
  // i.e. 2^52 - 2 * count (0 for count 0), and 2^52 vanishes from the low
  // 32 bits the dot products are read from.
  template <int P, int B, int W>
  NASBNN_TARGET NASBNN_INLINE void accumulate(
      __m512i (&acc)[P][B], const uint64_t* const (&px)[P], const Tap* taps,
      int num_taps, const uint64_t* w, int64_t block_stride,
      int64_t words) {
    const int64_t n = W > 0 ? W : words;
    const __m512i minus_two = _mm512_set1_epi64((1LL << 52) - 2);
    for (int t = 0; t < num_taps; ++t) {
      const int64_t xo = taps[t].x;
      const uint64_t* wt = w + taps[t].w;
      for (int64_t k = 0; k < n; ++k) {
        __m512i wv[B];
        for (int j = 0; j < B; ++j)
          wv[j] = _mm512_loadu_si512(wt + j * block_stride + k * kLanes);
        for (int i = 0; i < P; ++i) {
          const __m512i xv =
              _mm512_set1_epi64(static_cast<long long>(px[i][xo + k]));
          for (int j = 0; j < B; ++j)
            acc[i][j] = _mm512_madd52lo_epu64(
                acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(wv[j], xv)),
                minus_two);
        }
      }
    }
  }

  template <int P, int B>
  NASBNN_TARGET NASBNN_INLINE void tile(const uint64_t* x, int64_t base,
                                        int64_t pixel_stride,
                                        const Tap* taps, int num_taps,
                                        const uint64_t* w,
                                        int64_t block_stride, int64_t words,
                                        int32_t full,
                                        int32_t (*dots)[kLanes * B]) {
    __m512i acc[P][B];
    for (int i = 0; i < P; ++i)
      for (int j = 0; j < B; ++j) acc[i][j] = _mm512_set1_epi64(full);
    const uint64_t* px[P];
    for (int i = 0; i < P; ++i) px[i] = x + base + i * pixel_stride;
    // One word per tap (groups of <= 64 channels: most NAS-BNN layers):
    // each read is a pixel pointer plus the tap's offset, no per-tap
    // pointer arithmetic.
    if (words == 1)
      accumulate<P, B, 1>(acc, px, taps, num_taps, w, block_stride, 1);
    else
      accumulate<P, B, 0>(acc, px, taps, num_taps, w, block_stride, words);
    // NOTE: one store per pixel, as wide as the epilogue's load of it; a
    // 512-bit load of two 256-bit stores cannot be store-forwarded and
    // stalled the epilogue.
    // The dot products are the low halves of the 64-bit lanes, those of
    // both blocks in one permute (not two narrowing moves and an insert,
    // all on the shuffle port that VPOPCNTQ uses too).
    const __m512i low_halves = _mm512_setr_epi32(
        0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int i = 0; i < P; ++i) {
      if constexpr (B == 1) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dots[i]),
                            _mm512_cvtepi64_epi32(acc[i][0]));
      } else {
        _mm512_storeu_si512(dots[i],
                            _mm512_permutex2var_epi32(acc[i][0], low_halves,
                                                      acc[i][1]));
      }
    }
  }

#include "epilogue_avx.inc"
#include "epilogue_avx512.inc"

  template <int P, int B>
  NASBNN_TARGET NASBNN_INLINE void epilogue(
      const ConvArgs& a, int64_t pixel, const float* res, int64_t res_step,
      const EpilogueSetup& s, const int32_t (*dots)[kLanes * B]) {
    if constexpr (B == 1)
      epilogue8<P>(a, pixel, res, res_step, s, dots);
    else
      epilogue16<P>(a, pixel, res, res_step, s, dots);
  }

  NASBNN_TARGET static inline uint64_t pack_word(const float* x,
                                                 const float* bias, int n) {
    uint64_t word = 0;
    const __m512 zero = _mm512_setzero_ps();
    for (int j = 0; j < n; j += 16) {
      const int m = std::min(16, n - j);
      const __mmask16 valid = static_cast<__mmask16>((1u << m) - 1u);
      __m512 v = _mm512_maskz_loadu_ps(valid, x + j);
      if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(valid, bias + j));
      const __mmask16 ge = _mm512_mask_cmp_ps_mask(valid, v, zero, _CMP_GE_OQ);
      word |= static_cast<uint64_t>(ge) << j;
    }
    return word;
  }
};

#define NASBNN_STEM_FMA
#define NASBNN_STEM_VNNI
#include "conv_driver.inc"
#undef NASBNN_STEM_VNNI
#undef NASBNN_STEM_FMA

#undef NASBNN_TARGET

}  // namespace avx512_path

const Kernels* avx512_kernels() { return &avx512_path::kKernels; }

}  // namespace nasbnn

#else

namespace nasbnn {
const Kernels* avx512_kernels() { return nullptr; }
}  // namespace nasbnn

#endif
