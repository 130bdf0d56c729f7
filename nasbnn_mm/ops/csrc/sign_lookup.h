#pragma once
// Shared parts of the sign-lookup convolutions (sign_conv_op.cpp,
// sign_grad_op.cpp, sign_dgrad_op.cpp): four float values d0..d3 become
// the 16 signed sums table[p] = sum_j (bit j of p ? 1 : -1) * d_j, so that
// a 4-bit sign pattern p picks the sum of the four products with +-1 in one
// vector permute.
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>

#include "dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace nasbnn {
namespace sign_lookup {

constexpr int64_t kTable = 16;   // entries (4 signs), one AVX-512 vector
constexpr int64_t kSigns = 4;    // values per table
constexpr int64_t kVector = 16;  // channels per vector of sums
constexpr int64_t kTile = 4;     // register tile rows of the kernels

// The lookups run on the avx512 kernel path only (callers check first).
inline void check_path(const char* op) {
  TORCH_CHECK(kernel_path() == "avx512", op,
              " runs on the avx512 kernel path only, the active path is ",
              kernel_path());
}

// dst[q * stride] |= (src[q] > 0) << bit for q < count, the sign bits of a
// pattern; returns whether every |src[q]| is 1 (the operand is +-1).
inline bool add_sign_bits(const float* src, int64_t count, int bit,
                          uint8_t* dst, int64_t stride) {
  bool unit = true;
  for (int64_t q = 0; q < count; ++q) {
    dst[q * stride] |= static_cast<uint8_t>((src[q] > 0.f) << bit);
    unit &= std::fabs(src[q]) == 1.f;
  }
  return unit;
}

#if defined(__x86_64__) && defined(__GNUC__)
// tables[e][p] = sum_j (bit j of p ? 1 : -1) * values[e][j], e < count,
// in the order ((d0 s0 + d1 s1) + d2 s2) + d3 s3.
__attribute__((target("avx512f"))) inline void build_tables(
    const float* values, int64_t count, float* tables) {
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                        5, 4, 3, 2, 1, 0);
  __m512 sign[kSigns];
  for (int j = 0; j < kSigns; ++j) {
    const __mmask16 set =
        _mm512_test_epi32_mask(lane, _mm512_set1_epi32(1 << j));
    sign[j] = _mm512_mask_blend_ps(set, _mm512_set1_ps(-1.f),
                                   _mm512_set1_ps(1.f));
  }
  for (int64_t e = 0; e < count; ++e) {
    const float* d = values + e * kSigns;
    __m512 t = _mm512_mul_ps(_mm512_set1_ps(d[0]), sign[0]);
    for (int j = 1; j < kSigns; ++j)
      t = _mm512_fmadd_ps(_mm512_set1_ps(d[j]), sign[j], t);
    _mm512_storeu_ps(tables + e * kTable, t);
  }
}

// 16 one-byte patterns at p widened to a permute index (maskz: no GCC 12
// may-be-uninitialized warning).
__attribute__((target("avx512f"))) inline __m512i load_patterns(
    const uint8_t* p) {
  return _mm512_maskz_cvtepu8_epi32(
      0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// acc + table[idx] per lane.
__attribute__((target("avx512f"))) inline __m512 add_lookup(__m512 acc,
                                                            __m512i idx,
                                                            __m512 table) {
  return _mm512_add_ps(acc, _mm512_maskz_permutexvar_ps(0xFFFF, idx, table));
}
#endif

// Calls f.template operator()<NR>() for the next pass over `left` blocks
// of 16 lanes, NR <= 4 blocks at a time (6 as 3 + 3 and 5 as 3 + 2, so
// that no pass runs on 1 or 2 blocks when 3 would do); returns NR.
template <typename F>
int64_t with_blocks(int64_t left, F f) {
  if (left == 3 || left == 5 || left == 6)
    return f.template operator()<3>(), 3;
  if (left >= 4) return f.template operator()<4>(), 4;
  if (left == 2) return f.template operator()<2>(), 2;
  return f.template operator()<1>(), 1;
}

}  // namespace sign_lookup
}  // namespace nasbnn
