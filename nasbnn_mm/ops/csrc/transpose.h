// Matrix transposes of float32 data in cache tiles (transpose_op.cpp):
// the layout changes of the training kernels' outputs, where ATen's
// strided copy runs 4-6x slower than a plain copy.
#pragma once

#include <cstdint>

#include "ops.h"

namespace nasbnn {

// dst[j * dst_ld + i] = src[i * src_ld + j] for i < rows, j < cols, on
// torch's threads.
void transpose_matrix(const float* src, int64_t src_ld, float* dst,
                      int64_t dst_ld, int64_t rows, int64_t cols);

// A contiguous (N, C, H, W) copy of a 4-D float32 CPU tensor that is
// channels_last (NHWC) in memory. See transpose_op.cpp.
Tensor nchw_from_nhwc(const Tensor& x);

}  // namespace nasbnn
