// transpose_matrix and nchw_from_nhwc (transpose.h): 64 x 16 tiles, the
// tiles of a matrix (or of the N per-sample matrices of a map) split over
// torch's threads.
#include <ATen/Parallel.h>

#include <algorithm>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "transpose.h"

namespace nasbnn {
namespace {

// A tile: 64 source rows x 16 columns, written 4 destination rows (64
// values each) at a time.
constexpr int64_t kTileRows = 64, kTileCols = 16;

// One tile: rows [i0, i1) x cols [j0, j1) of src to dst, in 4 x 4 blocks
// of SSE registers on x86-64 (the rest value by value), 4 columns at a
// time so that 4 destination rows are written.
inline void transpose_tile(const float* src, int64_t src_ld, float* dst,
                           int64_t dst_ld, int64_t i0, int64_t i1, int64_t j0,
                           int64_t j1) {
  int64_t i4 = i0, j4 = j0;  // the blocked part ends at (i4, j4)
#if defined(__SSE2__)
  i4 = i0 + (i1 - i0) / 4 * 4;
  j4 = j0 + (j1 - j0) / 4 * 4;
  for (int64_t j = j0; j < j4; j += 4)
    for (int64_t i = i0; i < i4; i += 4) {
      const float* s = src + i * src_ld + j;
      __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + src_ld),
             r2 = _mm_loadu_ps(s + 2 * src_ld),
             r3 = _mm_loadu_ps(s + 3 * src_ld);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      float* d = dst + j * dst_ld + i;
      _mm_storeu_ps(d, r0);
      _mm_storeu_ps(d + dst_ld, r1);
      _mm_storeu_ps(d + 2 * dst_ld, r2);
      _mm_storeu_ps(d + 3 * dst_ld, r3);
    }
#endif
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t i = j < j4 ? i4 : i0; i < i1; ++i)
      dst[j * dst_ld + i] = src[i * src_ld + j];
}

// Tiles [begin, end) of `count` row-major matrices (tile t: matrix t /
// per, then tile row and column), matrix m at src + m * src_step.
void transpose_tiles(const float* src, int64_t src_ld, int64_t src_step,
                     float* dst, int64_t dst_ld, int64_t dst_step,
                     int64_t rows, int64_t cols, int64_t begin, int64_t end) {
  const int64_t tile_rows = (rows + kTileRows - 1) / kTileRows;
  const int64_t tile_cols = (cols + kTileCols - 1) / kTileCols;
  const int64_t per = tile_rows * tile_cols;
  for (int64_t t = begin; t < end; ++t) {
    const int64_t m = t / per, r = t % per / tile_cols, c = t % tile_cols;
    transpose_tile(src + m * src_step, src_ld, dst + m * dst_step, dst_ld,
                   r * kTileRows, std::min(rows, (r + 1) * kTileRows),
                   c * kTileCols, std::min(cols, (c + 1) * kTileCols));
  }
}

// Transposes `count` matrices on torch's threads.
void transpose_batch(const float* src, int64_t src_ld, int64_t src_step,
                     float* dst, int64_t dst_ld, int64_t dst_step,
                     int64_t count, int64_t rows, int64_t cols) {
  const int64_t tiles = count * ((rows + kTileRows - 1) / kTileRows) *
                        ((cols + kTileCols - 1) / kTileCols);
  at::parallel_for(0, tiles, 4, [&](int64_t begin, int64_t end) {
    transpose_tiles(src, src_ld, src_step, dst, dst_ld, dst_step, rows, cols,
                    begin, end);
  });
}

}  // namespace

void transpose_matrix(const float* src, int64_t src_ld, float* dst,
                      int64_t dst_ld, int64_t rows, int64_t cols) {
  transpose_batch(src, src_ld, 0, dst, dst_ld, 0, 1, rows, cols);
}

Tensor nchw_from_nhwc(const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() == 4 &&
                  x.is_contiguous(at::MemoryFormat::ChannelsLast),
              "nchw_from_nhwc: expected a channels_last (N, C, H, W) CPU "
              "float32 tensor, got ", x.scalar_type(), " of shape ",
              x.sizes(), " and strides ", x.strides());
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  Tensor out = at::empty(x.sizes(), x.options());
  // per sample: (HW, C) rows -> (C, HW)
  transpose_batch(x.data_ptr<float>(), c, hw * c, out.data_ptr<float>(), hw,
                  c * hw, n, hw, c);
  return out;
}

}  // namespace nasbnn
