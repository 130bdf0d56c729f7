// sign_conv_weight_grad of nasbnn_mm._ext: the weight gradient of a
// convolution whose input x is +-1 (an RSign output),
//   dW[o, i, kh, kw] = sum_{n, h, w} dY[n, o, h, w] * x[n, i, hs + kh - p,
//                                                      ws + kw - p],
// by table lookup instead of multiply-adds. The signs of 4 samples at one
// input position and channel are a 4-bit pattern; for each output channel
// and output position, the 16 signed sums +-dY[n0] +-dY[n1] +-dY[n2]
// +-dY[n3] form one table, so one vpermps and one add do the work of four
// FMAs for 16 input channels. Products that fall on the zero padding are
// skipped. Each gradient value sums its terms in the same fixed order
// whatever the threads (they split the output channels). avx512 kernel
// path only; the caller runs aten elsewhere.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "ops.h"
#include "sign_lookup.h"

namespace nasbnn {
namespace {

using sign_lookup::kTable;
using sign_lookup::kVector;
constexpr int64_t kSamples = sign_lookup::kSigns;  // samples per pattern
constexpr int64_t kRows = sign_lookup::kTile;      // output channels per tile

struct Geometry {
  int64_t n, chunks, height, width, out_h, out_w, k, stride, pad;
  int64_t groups, in_group, out_group, blocks, padded;
};

// patterns[g][c][h][w][i] for i < padded (zero past in_group): bit j set
// when x[4c + j, g * in_group + i, h, w] > 0. Returns whether |x| == 1
// everywhere.
bool pack_patterns(const float* x, const Geometry& g, uint8_t* patterns) {
  const int64_t hw = g.height * g.width;
  const int64_t channels = g.groups * g.in_group;
  std::atomic<bool> all_signs{true};
  at::parallel_for(
      0, g.groups * g.chunks * g.in_group, 1, [&](int64_t begin, int64_t end) {
        std::vector<uint8_t> bits(hw);
        bool signs = true;
        for (int64_t u = begin; u < end; ++u) {
          const int64_t i = u % g.in_group;
          const int64_t c = u / g.in_group % g.chunks;
          const int64_t gr = u / (g.in_group * g.chunks);
          std::fill(bits.begin(), bits.end(), 0);
          for (int64_t j = 0; j < kSamples && c * kSamples + j < g.n; ++j)
            signs &= sign_lookup::add_sign_bits(
                x + ((c * kSamples + j) * channels + gr * g.in_group + i) * hw,
                hw, j, bits.data(), 1);
          uint8_t* dst = patterns + (gr * g.chunks + c) * hw * g.padded + i;
          for (int64_t q = 0; q < hw; ++q) dst[q * g.padded] = bits[q];
        }
        if (!signs) all_signs = false;
      });
  return all_signs;
}

// [o0, o0 + count) output channels' outputs at index ((c, h, w), o)
// gathered per pattern chunk: dy_rows[m][c][q][j] = dY[4c + j, o0 + m, q]
// (0 past n or count).
void gather_grad(const float* dy, const Geometry& g, int64_t o0,
                 int64_t count, float* rows) {
  const int64_t q_all = g.out_h * g.out_w;
  const int64_t channels = g.groups * g.out_group;
  std::fill(rows, rows + kRows * g.chunks * q_all * kSamples, 0.f);
  for (int64_t m = 0; m < count; ++m)
    for (int64_t c = 0; c < g.chunks; ++c)
      for (int64_t j = 0; j < kSamples && c * kSamples + j < g.n; ++j) {
        const float* src =
            dy + ((c * kSamples + j) * channels + o0 + m) * q_all;
        float* dst = rows + ((m * g.chunks + c) * q_all) * kSamples + j;
        for (int64_t q = 0; q < q_all; ++q) dst[q * kSamples] = src[q];
      }
}

// The output rows [lo, hi) whose input row r * stride + tap - pad lies in
// [0, size).
void valid_range(int64_t out, int64_t size, int64_t tap, const Geometry& g,
                 int64_t* lo, int64_t* hi) {
  const int64_t first = g.pad - tap;  // r * stride >= first
  *lo = first <= 0 ? 0 : (first + g.stride - 1) / g.stride;
  const int64_t last = size - 1 + g.pad - tap;  // r * stride <= last
  *hi = last < 0 ? 0 : std::min(out, last / g.stride + 1);
  *lo = std::min(*lo, *hi);
}

#if defined(__x86_64__) && defined(__GNUC__)
// sums[m * NR + r] += the lookups of n output positions of one row: the
// patterns at p + j * p_step + 16 r, output channel m's tables at
// t + m * row_stride + 16 j. The sums are named variables, not an array:
// GCC kept an array's sums in registers but also stored them to the stack
// at every position (the kernel took 32.7 instead of 26.7 ms on a 16x16
// map, 192 -> 192 channels, 5x5).
template <int NR>
__attribute__((target("avx512f"), noinline)) void lookup_row(
    const uint8_t* p, int64_t p_step, const float* t, int64_t row_stride,
    int64_t n, float* sums) {
  static_assert(kRows == 4 && NR >= 1 && NR <= 4);
  const float* t1 = t + row_stride;
  const float* t2 = t1 + row_stride;
  const float* t3 = t2 + row_stride;
#define NASBNN_LOAD(m, r) \
  (NR > r ? _mm512_loadu_ps(sums + (m * NR + r) * kVector) : a##m##0)
#define NASBNN_SUMS(m)                                               \
  __m512 a##m##0 = _mm512_loadu_ps(sums + m * NR * kVector);         \
  __m512 a##m##1 = NASBNN_LOAD(m, 1), a##m##2 = NASBNN_LOAD(m, 2),   \
         a##m##3 = NASBNN_LOAD(m, 3);
  NASBNN_SUMS(0) NASBNN_SUMS(1) NASBNN_SUMS(2) NASBNN_SUMS(3)
#undef NASBNN_SUMS
#undef NASBNN_LOAD
  for (int64_t j = 0; j < n; ++j, p += p_step) {
    const __m512i i0 = sign_lookup::load_patterns(p);
    const __m512i i1 = NR > 1 ? sign_lookup::load_patterns(p + 16) : i0;
    const __m512i i2 = NR > 2 ? sign_lookup::load_patterns(p + 32) : i0;
    const __m512i i3 = NR > 3 ? sign_lookup::load_patterns(p + 48) : i0;
#define NASBNN_ADD(m, r) \
  if constexpr (NR > r) a##m##r = sign_lookup::add_lookup(a##m##r, i##r, tv);
#define NASBNN_ROW(m, tm)                                \
  {                                                      \
    const __m512 tv = _mm512_loadu_ps(tm + j * kTable);  \
    NASBNN_ADD(m, 0) NASBNN_ADD(m, 1) NASBNN_ADD(m, 2)   \
    NASBNN_ADD(m, 3)                                     \
  }
    NASBNN_ROW(0, t) NASBNN_ROW(1, t1) NASBNN_ROW(2, t2) NASBNN_ROW(3, t3)
#undef NASBNN_ROW
#undef NASBNN_ADD
  }
#define NASBNN_STORE(m, r) \
  if constexpr (NR > r)    \
    _mm512_storeu_ps(sums + (m * NR + r) * kVector, a##m##r);
#define NASBNN_STORE_ROW(m)                                       \
  NASBNN_STORE(m, 0) NASBNN_STORE(m, 1) NASBNN_STORE(m, 2) \
  NASBNN_STORE(m, 3)
  NASBNN_STORE_ROW(0) NASBNN_STORE_ROW(1) NASBNN_STORE_ROW(2)
  NASBNN_STORE_ROW(3)
#undef NASBNN_STORE_ROW
#undef NASBNN_STORE
}

// out[m][r * 16 + l] = the gradient of output channel m, input channel
// (block0 + r) * 16 + l at tap (kh, kw), for the group's patterns.
template <int NR>
__attribute__((target("avx512f"))) void tap_tile(const uint8_t* patterns,
                                                 const float* tables,
                                                 const Geometry& g,
                                                 int64_t kh, int64_t kw,
                                                 int64_t block0, float* out) {
  int64_t h0, h1, w0, w1;
  valid_range(g.out_h, g.height, kh, g, &h0, &h1);
  valid_range(g.out_w, g.width, kw, g, &w0, &w1);
  const int64_t q_all = g.out_h * g.out_w;
  const int64_t row_stride = g.chunks * q_all * kTable;
  alignas(64) float sums[kRows * NR * kVector] = {};
  for (int64_t c = 0; c < g.chunks; ++c)
    for (int64_t oh = h0; oh < h1 && w0 < w1; ++oh) {
      const int64_t ih = oh * g.stride + kh - g.pad;
      const uint8_t* p = patterns +
                         ((c * g.height + ih) * g.width +
                          w0 * g.stride + kw - g.pad) * g.padded +
                         block0 * kVector;
      const float* t = tables + ((c * g.out_h + oh) * g.out_w + w0) * kTable;
      lookup_row<NR>(p, g.stride * g.padded, t, row_stride, w1 - w0, sums);
    }
  for (int64_t m = 0; m < kRows; ++m)
    for (int r = 0; r < NR; ++r)
      std::copy(sums + (m * NR + r) * kVector,
                sums + (m * NR + r + 1) * kVector,
                out + m * g.padded + r * kVector);
}

// The gradient rows of output channels [o0, o0 + count) of group `gr`.
__attribute__((target("avx512f"))) void weight_grad_rows(
    const float* dy, const uint8_t* patterns, const Geometry& g, int64_t gr,
    int64_t o0, int64_t count, std::vector<float>& rows,
    std::vector<float>& tables, std::vector<float>& tile, float* dw) {
  const int64_t q_all = g.out_h * g.out_w;
  gather_grad(dy, g, gr * g.out_group + o0, count, rows.data());
  sign_lookup::build_tables(rows.data(), kRows * g.chunks * q_all,
                            tables.data());
  const uint8_t* group_patterns =
      patterns + gr * g.chunks * g.height * g.width * g.padded;
  const int64_t taps = g.k * g.k;
  for (int64_t tap = 0; tap < taps; ++tap) {
    float* out = tile.data() + tap * kRows * g.padded;
    const int64_t kh = tap / g.k, kw = tap % g.k;
    for (int64_t b = 0; b < g.blocks;)
      b += sign_lookup::with_blocks(g.blocks - b, [&]<int NR>() {
        tap_tile<NR>(group_patterns, tables.data(), g, kh, kw, b,
                     out + b * kVector);
      });
  }
  // tile[tap][m][i] -> dw[o][i][tap]
  for (int64_t m = 0; m < count; ++m) {
    float* dst = dw + (gr * g.out_group + o0 + m) * g.in_group * taps;
    for (int64_t i = 0; i < g.in_group; ++i)
      for (int64_t tap = 0; tap < taps; ++tap)
        dst[i * taps + tap] = tile[(tap * kRows + m) * g.padded + i];
  }
}
#endif

}  // namespace

Tensor sign_conv_weight_grad(const Tensor& grad, const Tensor& x,
                             int64_t kernel_size, int64_t stride,
                             int64_t padding, int64_t groups) {
  sign_lookup::check_path("sign_conv_weight_grad");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() == 4 && grad.scalar_type() == at::kFloat &&
                  grad.dim() == 4 && grad.size(0) == x.size(0),
              "sign_conv_weight_grad: x (N, C, H, W) and grad (N, O, H', "
              "W') must be CPU float32, got ", x.sizes(), " and ",
              grad.sizes());
  TORCH_CHECK(groups >= 1 && x.size(1) % groups == 0 &&
                  grad.size(1) % groups == 0 && kernel_size >= 1 &&
                  stride >= 1 && padding >= 0,
              "sign_conv_weight_grad: bad kernel ", kernel_size, ", stride ",
              stride, ", padding ", padding, " or groups ", groups);
  Geometry g{};
  g.n = x.size(0);
  g.chunks = (g.n + kSamples - 1) / kSamples;
  g.height = x.size(2), g.width = x.size(3);
  g.out_h = grad.size(2), g.out_w = grad.size(3);
  g.k = kernel_size, g.stride = stride, g.pad = padding;
  TORCH_CHECK(g.out_h == (g.height + 2 * padding - kernel_size) / stride + 1 &&
                  g.out_w == (g.width + 2 * padding - kernel_size) / stride + 1,
              "sign_conv_weight_grad: grad ", grad.sizes(),
              " is not the output size of x ", x.sizes());
  g.groups = groups;
  g.in_group = x.size(1) / groups, g.out_group = grad.size(1) / groups;
  g.blocks = (g.in_group + kVector - 1) / kVector;
  g.padded = g.blocks * kVector;
  const Tensor xc = x.contiguous(), dyc = grad.contiguous();
  Tensor patterns = at::zeros(
      {groups * g.chunks * g.height * g.width * g.padded}, x.options().dtype(
                                                               at::kByte));
  if (!pack_patterns(xc.data_ptr<float>(), g, patterns.data_ptr<uint8_t>()))
    return Tensor();
  Tensor dw = at::empty({grad.size(1), g.in_group, g.k, g.k}, x.options());
#if defined(__x86_64__) && defined(__GNUC__)
  const int64_t q_all = g.out_h * g.out_w;
  const int64_t blocks_per_group = (g.out_group + kRows - 1) / kRows;
  const float* dy = dyc.data_ptr<float>();
  const uint8_t* pat = patterns.data_ptr<uint8_t>();
  float* out = dw.data_ptr<float>();
  at::parallel_for(0, groups * blocks_per_group, 1, [&](int64_t b, int64_t e) {
    std::vector<float> rows(kRows * g.chunks * q_all * kSamples);
    std::vector<float> tables(kRows * g.chunks * q_all * kTable);
    std::vector<float> tile(g.k * g.k * kRows * g.padded);
    for (int64_t u = b; u < e; ++u) {
      const int64_t gr = u / blocks_per_group;
      const int64_t o0 = u % blocks_per_group * kRows;
      weight_grad_rows(dy, pat, g, gr, o0, std::min(kRows, g.out_group - o0),
                       rows, tables, tile, out);
    }
  });
#endif
  return dw;
}

}  // namespace nasbnn
