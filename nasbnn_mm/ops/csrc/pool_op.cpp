// avg_pool2x2_forward / avg_pool2x2_backward of nasbnn_mm._ext: the 2 x 2
// average pooling (stride 2) of the stride-2 shortcut on contiguous
// (N, C, H, W) float32 maps of even H and W, with ATen's arithmetic
// (((x00 + x01) + x10) + x11) / 4 forward and g / 4 to each input
// backward), one output row per step on torch's threads, where ATen's
// generic window loops run ~3x slower.
#include <ATen/Parallel.h>

#include "channel_planes.h"

namespace nasbnn {
namespace {

Planes check_even(const Tensor& x, const char* name) {
  const Planes p = check_map(x, name);
  TORCH_CHECK(x.size(2) % 2 == 0 && x.size(3) % 2 == 0, name,
              ": expected even H and W, got ", x.sizes());
  return p;
}

}  // namespace

Tensor avg_pool2x2_forward(const Tensor& x) {
  check_even(x, "avg_pool2x2_forward");
  const int64_t h = x.size(2) / 2, w = x.size(3) / 2, in_w = x.size(3);
  Tensor y = at::empty({x.size(0), x.size(1), h, w}, x.options());
  const float* xs = x.data_ptr<float>();
  float* ys = y.data_ptr<float>();
  // output rows (plane, row): input rows 2 row and 2 row + 1
  at::parallel_for(0, y.numel() / w, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* __restrict top = xs + 2 * r * in_w;
      const float* __restrict bottom = top + in_w;
      float* __restrict out = ys + r * w;
      for (int64_t j = 0; j < w; ++j)
        out[j] = (((top[2 * j] + top[2 * j + 1]) + bottom[2 * j]) +
                  bottom[2 * j + 1]) /
                 4.f;
    }
  });
  return y;
}

Tensor avg_pool2x2_backward(const Tensor& grad, int64_t height,
                            int64_t width) {
  check_map(grad, "avg_pool2x2_backward");
  TORCH_CHECK(height == 2 * grad.size(2) && width == 2 * grad.size(3),
              "avg_pool2x2_backward: grad ", grad.sizes(),
              " is not the pooling of a ", height, " x ", width, " map");
  const int64_t w = grad.size(3);
  Tensor gx =
      at::empty({grad.size(0), grad.size(1), height, width}, grad.options());
  const float* gs = grad.data_ptr<float>();
  float* gxs = gx.data_ptr<float>();
  at::parallel_for(0, grad.numel() / w, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* __restrict g = gs + r * w;
      float* __restrict top = gxs + 2 * r * width;
      float* __restrict bottom = top + width;
      for (int64_t j = 0; j < w; ++j) {
        const float v = g[j] / 4.f;
        top[2 * j] = v;
        top[2 * j + 1] = v;
        bottom[2 * j] = v;
        bottom[2 * j + 1] = v;
      }
    }
  });
  return gx;
}

}  // namespace nasbnn
