// sign_input_conv2d of nasbnn_mm._ext: a convolution of a +-1 input x (an
// RSign output) with a float weight (the Bi-Teacher's),
//   y[n, o, h, w] = sum_{i, kh, kw} W[o, i, kh, kw] x[n, i, hs + kh - p,
//                                                    ws + kw - p],
// by table lookup: the signs of 4 input channels of one sample at one input
// position are a 4-bit pattern, and for each output channel and tap the 16
// signed sums of those channels' weights one table. Lanes are 16 samples,
// a register tile 2 output positions x 4 output channels x up to 2 blocks
// of samples (fewer loads per lookup than 4 x 2); taps on the zero
// padding are skipped. Each output sums
// its terms in a fixed order (taps, then channels) whatever the threads
// (they split the output channels). avx512 kernel path only.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "ops.h"
#include "sign_lookup.h"
#include "transpose.h"

namespace nasbnn {
namespace {

using sign_lookup::kTable;
using sign_lookup::kVector;
constexpr int64_t kIn = sign_lookup::kSigns;  // input channels per pattern
constexpr int64_t kOutRows = 4;    // output channels per tile
constexpr int64_t kPositions = 2;  // output positions per tile

struct Geometry {
  int64_t n, height, width, out_h, out_w, k, stride, pad;
  int64_t groups, in_group, out_group, chunks, blocks, padded;
};

// patterns[g][c][h][w][n] (n < padded, zero past n): bit j set when
// x[n, g * in_group + 4c + j, h, w] > 0. Returns whether |x| == 1
// everywhere.
bool pack_patterns(const float* x, const Geometry& g, uint8_t* patterns) {
  const int64_t hw = g.height * g.width;
  const int64_t channels = g.groups * g.in_group;
  std::atomic<bool> all_signs{true};
  at::parallel_for(0, g.groups * g.chunks, 1, [&](int64_t begin, int64_t end) {
    bool signs = true;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t gr = u / g.chunks, c = u % g.chunks;
      uint8_t* dst = patterns + u * hw * g.padded;
      for (int64_t j = 0; j < kIn && c * kIn + j < g.in_group; ++j)
        for (int64_t n = 0; n < g.n; ++n)
          signs &= sign_lookup::add_sign_bits(
              x + (n * channels + gr * g.in_group + c * kIn + j) * hw, hw, j,
              dst + n, g.padded);
    }
    if (!signs) all_signs = false;
  });
  return all_signs;
}

#if defined(__x86_64__) && defined(__GNUC__)
// tables[m][tap][c][p] of output channels o0 + m (m < count; zero rows
// after): the signed sums of W[o0 + m, 4c + j, tap] over j.
__attribute__((target("avx512f"))) void weight_tables(
    const float* w, const Geometry& g, int64_t o0, int64_t count,
    std::vector<float>& values, float* tables) {
  const int64_t taps = g.k * g.k;
  std::fill(values.begin(), values.end(), 0.f);
  for (int64_t m = 0; m < count; ++m)
    for (int64_t i = 0; i < g.in_group; ++i)
      for (int64_t tap = 0; tap < taps; ++tap)
        values[((m * taps + tap) * g.chunks + i / kIn) * kIn + i % kIn] =
            w[((o0 + m) * g.in_group + i) * taps + tap];
  sign_lookup::build_tables(values.data(), kOutRows * taps * g.chunks,
                            tables);
}

// out[o0 + m][q][n] for the output positions q = first .. first + count
// - 1 and the samples of blocks [block0, block0 + NR).
template <int NR>
__attribute__((target("avx512f"))) void position_tile(
    const uint8_t* patterns, const float* tables,
    const Geometry& g, int64_t first, int64_t count, int64_t block0,
    int64_t rows, float* out) {
  const int64_t taps = g.k * g.k, hw = g.height * g.width;
  __m512 acc[kPositions][kOutRows][NR];
  for (int64_t m = 0; m < kPositions; ++m)
    for (int64_t o = 0; o < kOutRows; ++o)
      for (int r = 0; r < NR; ++r) acc[m][o][r] = _mm512_setzero_ps();
  for (int64_t tap = 0; tap < taps; ++tap) {
    const int64_t kh = tap / g.k, kw = tap % g.k;
    const uint8_t* pat[kPositions];
    bool valid[kPositions];
    bool any = false;
    for (int64_t m = 0; m < kPositions; ++m) {
      const int64_t q = first + std::min(m, count - 1);
      const int64_t ih = q / g.out_w * g.stride + kh - g.pad;
      const int64_t iw = q % g.out_w * g.stride + kw - g.pad;
      const bool inside = m < count && ih >= 0 && ih < g.height && iw >= 0 &&
                          iw < g.width;
      any |= inside;
      valid[m] = inside;
      pat[m] = inside ? patterns + (ih * g.width + iw) * g.padded +
                            block0 * kVector
                      : patterns;
    }
    if (!any) continue;
    const float* tab = tables + tap * g.chunks * kTable;
    const int64_t row_stride = taps * g.chunks * kTable;
    const int64_t chunk_stride = hw * g.padded;
    for (int64_t c = 0; c < g.chunks; ++c) {
      __m512 t[kOutRows];
      for (int64_t o = 0; o < kOutRows; ++o)
        t[o] = _mm512_loadu_ps(tab + o * row_stride + c * kTable);
      for (int64_t m = 0; m < kPositions; ++m) {
        if (!valid[m]) continue;  // the same branch for every c
        const uint8_t* p = pat[m];
        pat[m] += chunk_stride;
        for (int r = 0; r < NR; ++r) {
          const __m512i idx = sign_lookup::load_patterns(p + kVector * r);
          for (int64_t o = 0; o < kOutRows; ++o)
            acc[m][o][r] = sign_lookup::add_lookup(acc[m][o][r], idx, t[o]);
        }
      }
    }
  }
  const int64_t q_all = g.out_h * g.out_w;
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t m = 0; m < count; ++m)
      for (int r = 0; r < NR; ++r)
        _mm512_storeu_ps(
            out + (o * q_all + first + m) * g.padded + (block0 + r) * kVector,
            acc[m][o][r]);
}
#endif

}  // namespace

Tensor sign_input_conv2d(const Tensor& x, const Tensor& weight,
                         int64_t stride, int64_t padding, int64_t groups) {
  sign_lookup::check_path("sign_input_conv2d");
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() == 4 && weight.scalar_type() == at::kFloat &&
                  weight.dim() == 4 && weight.size(2) == weight.size(3) &&
                  groups >= 1 && x.size(1) == weight.size(1) * groups &&
                  weight.size(0) % groups == 0 && stride >= 1 &&
                  padding >= 0 &&
                  x.size(2) + 2 * padding >= weight.size(2) &&
                  x.size(3) + 2 * padding >= weight.size(2),
              "sign_input_conv2d: x (N, C, H, W) and weight (O, C / groups, "
              "k, k) must be CPU float32, got ", x.sizes(), " and ",
              weight.sizes(), " with groups ", groups);
  Geometry g{};
  g.n = x.size(0), g.height = x.size(2), g.width = x.size(3);
  g.k = weight.size(2), g.stride = stride, g.pad = padding;
  g.out_h = (g.height + 2 * padding - g.k) / stride + 1;
  g.out_w = (g.width + 2 * padding - g.k) / stride + 1;
  g.groups = groups, g.in_group = weight.size(1);
  g.out_group = weight.size(0) / groups;
  g.chunks = (g.in_group + kIn - 1) / kIn;
  g.blocks = (g.n + kVector - 1) / kVector;
  g.padded = g.blocks * kVector;
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  const int64_t hw = g.height * g.width, q_all = g.out_h * g.out_w;
  Tensor patterns = at::zeros({groups * g.chunks * hw * g.padded},
                              x.options().dtype(at::kByte));
  if (!pack_patterns(xc.data_ptr<float>(), g, patterns.data_ptr<uint8_t>()))
    return Tensor();
  // out[o][q][n], n < padded
  Tensor out = at::empty({weight.size(0), q_all, g.padded}, x.options());
#if defined(__x86_64__) && defined(__GNUC__)
  const int64_t taps = g.k * g.k;
  const int64_t blocks_per_group = (g.out_group + kOutRows - 1) / kOutRows;
  const uint8_t* pat = patterns.data_ptr<uint8_t>();
  const float* w = wc.data_ptr<float>();
  float* y = out.data_ptr<float>();
  at::parallel_for(0, groups * blocks_per_group, 1, [&](int64_t b, int64_t e) {
    std::vector<float> values(kOutRows * taps * g.chunks * kIn);
    std::vector<float> tables(kOutRows * taps * g.chunks * kTable);
    for (int64_t u = b; u < e; ++u) {
      const int64_t gr = u / blocks_per_group;
      const int64_t o0 = gr * g.out_group + u % blocks_per_group * kOutRows;
      const int64_t rows =
          std::min(kOutRows, (gr + 1) * g.out_group - o0);
      weight_tables(w, g, o0, rows, values, tables.data());
      const uint8_t* group_patterns = pat + gr * g.chunks * hw * g.padded;
      for (int64_t first = 0; first < q_all; first += kPositions) {
        const int64_t count = std::min(kPositions, q_all - first);
        for (int64_t nb = 0; nb < g.blocks;) {
          if (g.blocks - nb >= 2) {
            position_tile<2>(group_patterns, tables.data(), g,
                             first, count, nb, rows, y + o0 * q_all * g.padded);
            nb += 2;
          } else {
            position_tile<1>(group_patterns, tables.data(), g,
                             first, count, nb, rows, y + o0 * q_all * g.padded);
            nb += 1;
          }
        }
      }
    }
  });
#endif
  // (O * Q, padded) -> (N, O * Q)
  Tensor result =
      at::empty({g.n, weight.size(0), g.out_h, g.out_w}, x.options());
  transpose_matrix(out.data_ptr<float>(), g.padded,
                   result.data_ptr<float>(), weight.size(0) * q_all,
                   weight.size(0) * q_all, g.n);
  return result;
}

}  // namespace nasbnn
