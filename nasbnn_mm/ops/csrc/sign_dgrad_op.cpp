// sign_conv_input_grad of nasbnn_mm._ext: the input gradient of a
// convolution whose weight is alpha_o * sign(W) (every output channel
// +-alpha_o: the students' binary convolutions),
//   dX[n, i, y, x] = sum_{o, kh, kw} alpha_o sign(W[o, i, kh, kw])
//                    * dY[n, o, (y + p - kh) / s, (x + p - kw) / s]
// over the terms whose output position is whole and inside the map, by
// table lookup: the signs of 4 output channels' weights at one tap and
// input channel are a 4-bit pattern, and for each output position the 16
// signed sums of those channels' alpha_o dY one table. One sample at a
// time (its tables stay in cache); lanes are 16 input channels, a register
// tile 4 input positions of one stride phase. Each value sums its terms in
// a fixed order whatever the threads (they split the samples). avx512
// kernel path only.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ops.h"
#include "sign_lookup.h"

namespace nasbnn {
namespace {

using sign_lookup::kTable;
using sign_lookup::kVector;
constexpr int64_t kOut = sign_lookup::kSigns;  // output channels per pattern
constexpr int64_t kPositions = sign_lookup::kTile;  // input positions / tile

struct Geometry {
  int64_t n, height, width, out_h, out_w, k, stride, pad;
  int64_t groups, in_group, out_group, chunks, blocks, padded;
};

// patterns[g][tap][c][i] (i < padded, zero past in_group): bit j set when
// W[g * out_group + 4c + j, i, tap] > 0; alpha[o] = |W[o, 0, 0, 0]|.
// Returns whether every |W[o, ...]| is alpha[o] > 0.
bool pack_weight(const float* w, const Geometry& g, uint8_t* patterns,
                 float* alpha) {
  const int64_t taps = g.k * g.k, row = g.in_group * taps;
  const int64_t out_channels = g.groups * g.out_group;
  bool uniform = true;
  for (int64_t o = 0; o < out_channels; ++o) {
    alpha[o] = std::fabs(w[o * row]);
    uniform &= alpha[o] > 0.f;
  }
  std::atomic<bool> all_uniform{uniform};
  at::parallel_for(0, g.groups * taps, 1, [&](int64_t begin, int64_t end) {
    bool ok = true;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t gr = u / taps, tap = u % taps;
      for (int64_t c = 0; c < g.chunks; ++c) {
        uint8_t* dst = patterns + (u * g.chunks + c) * g.padded;
        for (int64_t j = 0; j < kOut && c * kOut + j < g.out_group; ++j) {
          const int64_t o = gr * g.out_group + c * kOut + j;
          const float* src = w + o * row + tap;
          for (int64_t i = 0; i < g.in_group; ++i) {
            const float v = src[i * taps];
            dst[i] |= static_cast<uint8_t>((v > 0.f) << j);
            ok &= std::fabs(v) == alpha[o];
          }
        }
      }
    }
    if (!ok) all_uniform = false;
  });
  return all_uniform;
}

// One stride phase (ry, rx) of the input: positions (s a + ry, s b + rx)
// and the taps that reach them, each with its output offset (dh, dw).
struct Phase {
  int64_t ry, rx, rows, cols;
  std::vector<int64_t> taps, dh, dw;
};

Phase make_phase(const Geometry& g, int64_t ry, int64_t rx) {
  Phase ph{ry, rx, (g.height - ry + g.stride - 1) / g.stride,
           (g.width - rx + g.stride - 1) / g.stride, {}, {}, {}};
  for (int64_t kh = 0; kh < g.k; ++kh)
    for (int64_t kw = 0; kw < g.k; ++kw) {
      const int64_t a = ry + g.pad - kh, b = rx + g.pad - kw;
      if (a % g.stride != 0 || b % g.stride != 0) continue;
      ph.taps.push_back(kh * g.k + kw);
      ph.dh.push_back(a / g.stride);
      ph.dw.push_back(b / g.stride);
    }
  return ph;
}

#if defined(__x86_64__) && defined(__GNUC__)
// tables[q][g][c][p] of one sample: the signed sums of alpha_o dY[o, q]
// over o = g * out_group + 4c + j (0 past out_group); dy is (O, H', W').
__attribute__((target("avx512f"))) void sample_tables(
    const float* dy, const float* alpha, const Geometry& g,
    std::vector<float>& values, float* tables) {
  const int64_t q_all = g.out_h * g.out_w;
  const int64_t per_position = g.groups * g.chunks;
  std::fill(values.begin(), values.end(), 0.f);
  for (int64_t gr = 0; gr < g.groups; ++gr)
    for (int64_t o = 0; o < g.out_group; ++o) {
      const int64_t oc = gr * g.out_group + o;
      const float* src = dy + oc * q_all;
      float* dst = values.data() + (gr * g.chunks + o / kOut) * kOut + o % kOut;
      for (int64_t q = 0; q < q_all; ++q)
        dst[q * per_position * kOut] = alpha[oc] * src[q];
    }
  sign_lookup::build_tables(values.data(), q_all * per_position, tables);
}

// buf[y][x][g * padded + i] of one sample for the phase's positions
// first .. first + count - 1 and the input channels of blocks
// [block0, block0 + NR).
template <int NR>
__attribute__((target("avx512f"))) void position_tile(
    const float* tables, const uint8_t* patterns, const Geometry& g,
    const Phase& ph, int64_t gr, int64_t first, int64_t count,
    int64_t block0, float* buf) {
  const int64_t per_position = g.groups * g.chunks * kTable;
  const int64_t taps = g.k * g.k;
  __m512 acc[kPositions][NR];
  for (int64_t m = 0; m < kPositions; ++m)
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm512_setzero_ps();
  for (size_t t = 0; t < ph.taps.size(); ++t) {
    const float* tab[kPositions];
    bool valid[kPositions], any = false;
    for (int64_t m = 0; m < kPositions; ++m) {
      const int64_t u = first + m;
      const int64_t h = u / ph.cols + ph.dh[t], w = u % ph.cols + ph.dw[t];
      valid[m] = m < count && h >= 0 && h < g.out_h && w >= 0 && w < g.out_w;
      any |= valid[m];
      tab[m] = valid[m] ? tables + (h * g.out_w + w) * per_position +
                              gr * g.chunks * kTable
                        : tables;
    }
    if (!any) continue;
    const uint8_t* pat = patterns +
                         (gr * taps + ph.taps[t]) * g.chunks * g.padded +
                         block0 * kVector;
    for (int64_t c = 0; c < g.chunks; ++c) {
      __m512i idx[NR];
      for (int r = 0; r < NR; ++r)
        idx[r] = sign_lookup::load_patterns(pat + c * g.padded + kVector * r);
      for (int64_t m = 0; m < kPositions; ++m) {
        if (!valid[m]) continue;  // the same branch for every c
        const __m512 tm = _mm512_loadu_ps(tab[m] + c * kTable);
        for (int r = 0; r < NR; ++r)
          acc[m][r] = sign_lookup::add_lookup(acc[m][r], idx[r], tm);
      }
    }
  }
  const int64_t row = g.groups * g.padded;
  for (int64_t m = 0; m < count; ++m) {
    const int64_t u = first + m;
    const int64_t y = u / ph.cols * g.stride + ph.ry;
    const int64_t x = u % ph.cols * g.stride + ph.rx;
    float* dst = buf + (y * g.width + x) * row + gr * g.padded +
                 block0 * kVector;
    for (int r = 0; r < NR; ++r)
      _mm512_storeu_ps(dst + r * kVector, acc[m][r]);
  }
}
#endif

}  // namespace

Tensor sign_conv_input_grad(const Tensor& grad, const Tensor& weight,
                            int64_t height, int64_t width, int64_t stride,
                            int64_t padding, int64_t groups) {
  sign_lookup::check_path("sign_conv_input_grad");
  TORCH_CHECK(grad.device().is_cpu() && grad.scalar_type() == at::kFloat &&
                  grad.dim() == 4 && weight.scalar_type() == at::kFloat &&
                  weight.dim() == 4 && weight.size(2) == weight.size(3) &&
                  groups >= 1 && grad.size(1) == weight.size(0) &&
                  weight.size(0) % groups == 0 && stride >= 1 &&
                  padding >= 0,
              "sign_conv_input_grad: grad (N, O, H', W') and weight (O, "
              "C / groups, k, k) must be CPU float32, got ", grad.sizes(),
              " and ", weight.sizes(), " with groups ", groups);
  Geometry g{};
  g.n = grad.size(0), g.height = height, g.width = width;
  g.out_h = grad.size(2), g.out_w = grad.size(3);
  g.k = weight.size(2), g.stride = stride, g.pad = padding;
  TORCH_CHECK(g.out_h == (height + 2 * padding - g.k) / stride + 1 &&
                  g.out_w == (width + 2 * padding - g.k) / stride + 1,
              "sign_conv_input_grad: grad ", grad.sizes(),
              " is not the output size of a ", height, "x", width, " input");
  g.groups = groups, g.in_group = weight.size(1);
  g.out_group = weight.size(0) / groups;
  g.chunks = (g.out_group + kOut - 1) / kOut;
  g.blocks = (g.in_group + kVector - 1) / kVector;
  g.padded = g.blocks * kVector;
  const Tensor wc = weight.contiguous(), dyc = grad.contiguous();
  std::vector<uint8_t> patterns(groups * g.k * g.k * g.chunks * g.padded, 0);
  std::vector<float> alpha(weight.size(0));
  if (!pack_weight(wc.data_ptr<float>(), g, patterns.data(), alpha.data()))
    return Tensor();
  const int64_t channels = groups * g.in_group, hw = height * width;
  Tensor dx = at::empty({g.n, channels, height, width}, grad.options());
#if defined(__x86_64__) && defined(__GNUC__)
  const int64_t q_all = g.out_h * g.out_w;
  const int64_t per_position = groups * g.chunks;
  std::vector<Phase> phases;
  for (int64_t ry = 0; ry < std::min(stride, height); ++ry)
    for (int64_t rx = 0; rx < std::min(stride, width); ++rx)
      phases.push_back(make_phase(g, ry, rx));
  const float* dy = dyc.data_ptr<float>();
  float* out = dx.data_ptr<float>();
  at::parallel_for(0, g.n, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> values(q_all * per_position * kOut);
    std::vector<float> tables(q_all * per_position * kTable);
    std::vector<float> buf(hw * groups * g.padded);
    for (int64_t n = begin; n < end; ++n) {
      sample_tables(dy + n * weight.size(0) * q_all, alpha.data(), g, values,
                    tables.data());
      for (const Phase& ph : phases)
        for (int64_t gr = 0; gr < groups; ++gr)
          for (int64_t first = 0; first < ph.rows * ph.cols;
               first += kPositions) {
            const int64_t count =
                std::min(kPositions, ph.rows * ph.cols - first);
            for (int64_t b = 0; b < g.blocks;)
              b += sign_lookup::with_blocks(g.blocks - b, [&]<int NR>() {
                position_tile<NR>(tables.data(), patterns.data(), g, ph, gr,
                                  first, count, b, buf.data());
              });
          }
      // buf[q][g * padded + i] -> dx[n][g * in_group + i][q]
      for (int64_t gr = 0; gr < groups; ++gr)
        for (int64_t i = 0; i < g.in_group; ++i) {
          const float* src = buf.data() + gr * g.padded + i;
          float* dst = out + (n * channels + gr * g.in_group + i) * hw;
          for (int64_t q = 0; q < hw; ++q)
            dst[q] = src[q * groups * g.padded];
        }
    }
  });
#endif
  return dx;
}

}  // namespace nasbnn
