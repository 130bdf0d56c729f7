// pack_signs of nasbnn_mm._ext: the signs of a contiguous (N, C, H, W)
// float32 tensor packed along C per group, as pack_activation packs an
// (N, H, W, C) one (bit 1: v >= 0), read in place (no NHWC copy), and a
// check that each n holds one magnitude |v|: the training step's binary
// convolutions take the XNOR-popcount kernels only where their input is
// exactly +-1 and each output channel's weight exactly +-alpha.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace nasbnn {
namespace {

// bits[p] = bit b set where rows[b * hw + p] >= 0, b < count (<= 64);
// returns whether some |value| differs from the float of bits want.
// Plane by plane (b outer): the p loop vectorizes; for hw >= 32.
__attribute__((target_clones("avx512f", "avx2", "default"))) bool
pack_planes(const float* rows, int64_t count, int64_t hw, uint32_t want,
            uint64_t* bits) {
  uint32_t differ = 0;
  for (int64_t p = 0; p < hw; ++p) bits[p] = 0;
  for (int64_t b = 0; b < count; ++b) {
    const float* row = rows + b * hw;
    for (int64_t p = 0; p < hw; ++p) {
      uint32_t v;
      std::memcpy(&v, &row[p], 4);
      differ |= (v & 0x7fffffffu) ^ want;
      bits[p] |= uint64_t(row[p] >= 0.f) << b;
    }
  }
  return differ != 0;
}

// pack_planes word by word (b inner, stride hw): for small hw, e.g. the
// taps of a conv weight.
bool pack_strided(const float* rows, int64_t count, int64_t hw,
                  uint32_t want, uint64_t* bits) {
  uint32_t differ = 0;
  for (int64_t p = 0; p < hw; ++p) {
    uint64_t word = 0;
    for (int64_t b = 0; b < count; ++b) {
      uint32_t v;
      std::memcpy(&v, &rows[b * hw + p], 4);
      differ |= (v & 0x7fffffffu) ^ want;
      word |= uint64_t(rows[b * hw + p] >= 0.f) << b;
    }
    bits[p] = word;
  }
  return differ != 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
// pack_strided, 16 values per compare (a masked load, or a gather for
// hw > 1).
__attribute__((target("avx512f"))) bool pack_strided_avx512(
    const float* rows, int64_t count, int64_t hw, uint32_t want,
    uint64_t* bits) {
  const __m512i index = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(hw)));
  const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
  const __m512i wanted = _mm512_set1_epi32(static_cast<int>(want));
  const __m512 zero = _mm512_setzero_ps();
  __mmask16 differ = 0;
  for (int64_t p = 0; p < hw; ++p) {
    uint64_t word = 0;
    for (int64_t b = 0; b < count; b += 16) {
      const int64_t m = std::min<int64_t>(16, count - b);
      const __mmask16 valid = static_cast<__mmask16>((1u << m) - 1u);
      const float* base = rows + b * hw + p;
      const __m512 v =
          hw == 1 ? _mm512_maskz_loadu_ps(valid, base)
                  : _mm512_mask_i32gather_ps(zero, valid, index, base, 4);
      differ |= _mm512_mask_cmpneq_epi32_mask(
          valid, _mm512_and_si512(_mm512_castps_si512(v), magnitude),
          wanted);
      word |= static_cast<uint64_t>(
                  _mm512_mask_cmp_ps_mask(valid, v, zero, _CMP_GE_OQ))
              << b;
    }
    bits[p] = word;
  }
  return differ != 0;
}
#endif

using PackFn = bool (*)(const float*, int64_t, int64_t, uint32_t,
                        uint64_t*);

// The routine for planes of hw values on the kernel path in use.
PackFn pack_fn(int64_t hw) {
  if (hw >= 32) return pack_planes;
#if defined(__x86_64__) && defined(__GNUC__)
  if (kernel_path() == "avx512") return pack_strided_avx512;
#endif
  return pack_strided;
}

}  // namespace

std::tuple<Tensor, Tensor, bool> pack_signs(const Tensor& x,
                                            int64_t groups) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() == 4 && x.is_contiguous(),
              "pack_signs: expected a contiguous (N, C, H, W) CPU float32 "
              "tensor, got ", x.scalar_type(), " of shape ", x.sizes());
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  TORCH_CHECK(x.numel() > 0, "pack_signs: empty tensor of shape ",
              x.sizes());
  TORCH_CHECK(groups >= 1 && c % groups == 0, "pack_signs: channels ", c,
              " not divisible by groups ", groups);
  const int64_t cg = c / groups, words = words_for(cg);
  const int64_t row_words = groups * words;
  Tensor packed = at::empty({n, x.size(2), x.size(3), row_words},
                            x.options().dtype(at::kUInt64));
  Tensor magnitude = at::empty({n}, x.options());
  const float* xs = x.data_ptr<float>();
  uint64_t* out = reinterpret_cast<uint64_t*>(packed.data_ptr());
  float* mag = magnitude.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) mag[i] = std::fabs(xs[i * c * hw]);
  std::vector<char> mixed(n * row_words, 0);
  const PackFn pack = pack_fn(hw);
  // one task: 64 channels (a word) of one n, over all of its pixels
  at::parallel_for(0, n * row_words, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint64_t> bits(hw);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task / row_words, g = task % row_words / words,
                    w = task % words;
      const int64_t c0 = g * cg + 64 * w;
      const int64_t count = std::min<int64_t>(64, cg - 64 * w);
      uint32_t want;
      std::memcpy(&want, &mag[i], 4);
      mixed[task] =
          pack(xs + (i * c + c0) * hw, count, hw, want, bits.data());
      uint64_t* o = out + g * words + w;
      for (int64_t p = 0; p < hw; ++p) o[(i * hw + p) * row_words] = bits[p];
    }
  });
  const bool uniform =
      std::find(mixed.begin(), mixed.end(), 1) == mixed.end();
  return {packed, magnitude, uniform};
}

}  // namespace nasbnn
