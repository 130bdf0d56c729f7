// rprelu_pack of nasbnn_mm._ext: the stem's RPReLU, its channels_last
// output and the packed signs of the first binary layer's input, in one
// pass over the stem's (N, C, H, W) map.
#include <ATen/Parallel.h>

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ops.h"

namespace nasbnn {
namespace {

// Pixels per work unit; their C values stay in L1 while transposed.
constexpr int64_t kUnit = 16;

// RPReLU of n values x[i * xs] into y[i * ys]: the float operations of
// the module (x + b_in, F.prelu, + b_out) in their order, so the result
// equals it. NOTE: without -fno-trapping-math the compiler keeps a branch
// for the select (it may not speculate the multiply), mispredicted on
// half the values; the SSE2 path selects with bit masks instead.
void rprelu_strided(const float* x, int64_t xs, int64_t n, float b_in,
                    float slope, float b_out, float* y, int64_t ys) {
  int64_t i = 0;
#if defined(__SSE2__)
  const __m128 vb_in = _mm_set1_ps(b_in), vslope = _mm_set1_ps(slope),
               vb_out = _mm_set1_ps(b_out), zero = _mm_setzero_ps();
  for (; i + 4 <= n; i += 4) {
    const __m128 t = _mm_add_ps(
        _mm_setr_ps(x[i * xs], x[(i + 1) * xs], x[(i + 2) * xs],
                    x[(i + 3) * xs]),
        vb_in);
    const __m128 neg = _mm_mul_ps(vslope, t);
    const __m128 pos = _mm_cmpgt_ps(t, zero);
    alignas(16) float v[4];
    _mm_store_ps(v, _mm_add_ps(_mm_or_ps(_mm_and_ps(pos, t),
                                         _mm_andnot_ps(pos, neg)),
                               vb_out));
    for (int j = 0; j < 4; ++j) y[(i + j) * ys] = v[j];
  }
#endif
  for (; i < n; ++i) {
    const float t = x[i * xs] + b_in;
    y[i * ys] = (t > 0.f ? t : slope * t) + b_out;
  }
}

}  // namespace

std::tuple<Tensor, Tensor> rprelu_pack(const Tensor& x,
                                       const Tensor& act_bias_in,
                                       const Tensor& act_weight,
                                       const Tensor& act_bias_out,
                                       int64_t pack_groups,
                                       const OptTensor& pack_bias) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() == 4 && x.numel() > 0,
              "rprelu_pack: x must be a non-empty float32 CPU tensor (N, "
              "C, H, W), got ", x.scalar_type(), " ", x.sizes());
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK(pack_groups >= 1 && c % pack_groups == 0, "rprelu_pack: ", c,
              " channels not divisible by pack_groups ", pack_groups);
  // Pixels of an image must be evenly spaced (NCHW or channels_last).
  const Tensor xs = x.stride(2) == w * x.stride(3) ? x : x.contiguous();
  const float* a_in = channel_vector(act_bias_in, c, "rprelu_pack: "
                                                     "act_bias_in");
  const float* a_w =
      channel_vector(act_weight, c, "rprelu_pack: act_weight");
  const float* a_out =
      channel_vector(act_bias_out, c, "rprelu_pack: act_bias_out");
  const float* p_bias = channel_vector(pack_bias, c, "rprelu_pack: "
                                                     "pack_bias");
  Tensor out = at::empty({n, c, h, w}, xs.options().memory_format(
                                           at::MemoryFormat::ChannelsLast));
  const int64_t pack_g = c / pack_groups, words = words_for(pack_g);
  Tensor packed =
      packed_output(c10::nullopt, n, h, w, pack_groups * words, "rprelu_pack");
  const float* src = xs.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t sn = xs.stride(0), sc = xs.stride(1), sp = xs.stride(3);
  const int64_t hw = h * w, units_per_image = (hw + kUnit - 1) / kUnit;
  const PackArgs pack{dst, p_bias,
                      reinterpret_cast<uint64_t*>(packed.data_ptr()), c,
                      pack_groups, pack_g, words};
  const Kernels& kern = active_kernels();
  at::parallel_for(0, n * units_per_image, 16, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t img = u / units_per_image;
      const int64_t q0 = (u % units_per_image) * kUnit;
      const int64_t q1 = std::min(hw, q0 + kUnit);
      const float* s = src + img * sn;
      float* d = dst + img * hw * c;
      const int64_t m = q1 - q0;
      for (int64_t ch = 0; ch < c; ++ch)
        rprelu_strided(s + ch * sc + q0 * sp, sp, m, a_in[ch], a_w[ch],
                       a_out[ch], d + q0 * c + ch, c);
      kern.pack_pixels(pack, img * hw + q0, img * hw + q1);
    }
  });
  return {out, packed};
}

}  // namespace nasbnn
