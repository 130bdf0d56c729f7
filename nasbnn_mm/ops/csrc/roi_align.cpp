// roi_align_nhwc of nasbnn_mm._ext: average RoIAlign (Mask R-CNN's, as
// MMCV's and torchvision's CPU ops compute it) reading a channels_last
// feature map, so each bilinear sample is four contiguous C-vectors
// instead of 4 * C scattered reads of an NCHW map.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"

namespace nasbnn {
namespace {

// One bilinear sample: the four neighbours' pixel offsets and weights.
struct Sample {
  int64_t pos[4];
  float w[4];
};

// The sample at (y, x) of an h x w map, with the boundary rules of the
// Mask R-CNN op (out of range by more than one pixel: all weights 0).
Sample bilinear_sample(float y, float x, int64_t h, int64_t w) {
  Sample s{{0, 0, 0, 0}, {0.f, 0.f, 0.f, 0.f}};
  if (y < -1.0 || y > h || x < -1.0 || x > w) return s;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x);
  int64_t y_high, x_high;
  if (y_low >= h - 1) {
    y_high = y_low = h - 1;
    y = static_cast<float>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= w - 1) {
    x_high = x_low = w - 1;
    x = static_cast<float>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const float ly = y - y_low, lx = x - x_low;
  const float hy = 1. - ly, hx = 1. - lx;
  s.pos[0] = y_low * w + x_low;
  s.pos[1] = y_low * w + x_high;
  s.pos[2] = y_high * w + x_low;
  s.pos[3] = y_high * w + x_high;
  s.w[0] = hy * hx;
  s.w[1] = hy * lx;
  s.w[2] = ly * hx;
  s.w[3] = ly * lx;
  return s;
}

// acc[c] += w0 * p0[c] + w1 * p1[c] + w2 * p2[c] + w3 * p3[c], in that
// order per channel (the reference ops' rounding; -ffp-contract=off keeps
// it free of fused multiply-adds); the compiler vectorizes over c.
void accumulate(const float* map, const Sample& s, int64_t c, float* acc) {
  const float *p0 = map + s.pos[0] * c, *p1 = map + s.pos[1] * c,
              *p2 = map + s.pos[2] * c, *p3 = map + s.pos[3] * c;
  const float w0 = s.w[0], w1 = s.w[1], w2 = s.w[2], w3 = s.w[3];
  for (int64_t i = 0; i < c; ++i)
    acc[i] += w0 * p0[i] + w1 * p1[i] + w2 * p2[i] + w3 * p3[i];
}

}  // namespace

Tensor roi_align_nhwc(const Tensor& input, const Tensor& rois,
                      int64_t pooled_h, int64_t pooled_w,
                      double spatial_scale, int64_t sampling_ratio,
                      bool aligned) {
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kFloat &&
                  input.dim() == 4,
              "roi_align_nhwc: input must be a (N, C, H, W) float32 CPU "
              "tensor, got ", input.sizes(), " ", input.scalar_type());
  TORCH_CHECK(rois.device().is_cpu() && rois.scalar_type() == at::kFloat &&
                  rois.dim() == 2 && rois.size(1) == 5,
              "roi_align_nhwc: rois must be (K, 5) float32 on CPU, got ",
              rois.sizes());
  TORCH_CHECK(pooled_h > 0 && pooled_w > 0, "roi_align_nhwc: output size ",
              pooled_h, "x", pooled_w, " must be positive");
  const Tensor map = input.contiguous(at::MemoryFormat::ChannelsLast);
  const Tensor boxes = rois.contiguous();
  const int64_t n = map.size(0), c = map.size(1), h = map.size(2),
                w = map.size(3), k = boxes.size(0), bins = pooled_h * pooled_w;
  Tensor out = at::empty({k, c, pooled_h, pooled_w}, map.options());
  const float* x = map.data_ptr<float>();
  const float* r = boxes.data_ptr<float>();
  float* y = out.data_ptr<float>();
  const float scale = static_cast<float>(spatial_scale);
  const float offset = aligned ? 0.5f : 0.f;
  at::parallel_for(0, k, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(c);
    std::vector<float> pooled(bins * c);  // (bins, C) of one RoI
    for (int64_t i = begin; i < end; ++i) {
      const float* roi = r + i * 5;
      const int64_t b = static_cast<int64_t>(roi[0]);
      TORCH_CHECK(b >= 0 && b < n, "roi_align_nhwc: RoI ", i,
                  " has batch index ", b, " outside [0, ", n, ")");
      const float start_w = roi[1] * scale - offset;
      const float start_h = roi[2] * scale - offset;
      float roi_w = roi[3] * scale - offset - start_w;
      float roi_h = roi[4] * scale - offset - start_h;
      if (!aligned) {
        roi_w = std::max(roi_w, 1.f);
        roi_h = std::max(roi_h, 1.f);
      }
      const float bin_h = roi_h / static_cast<float>(pooled_h);
      const float bin_w = roi_w / static_cast<float>(pooled_w);
      const int64_t grid_h = sampling_ratio > 0
                                 ? sampling_ratio
                                 : static_cast<int64_t>(ceilf(roi_h / pooled_h));
      const int64_t grid_w = sampling_ratio > 0
                                 ? sampling_ratio
                                 : static_cast<int64_t>(ceilf(roi_w / pooled_w));
      const float count = static_cast<float>(std::max<int64_t>(grid_h * grid_w, 1));
      const float* image = x + b * h * w * c;
      for (int64_t ph = 0; ph < pooled_h; ++ph) {
        for (int64_t pw = 0; pw < pooled_w; ++pw) {
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t iy = 0; iy < grid_h; ++iy) {
            const float yy = start_h + ph * bin_h +
                             static_cast<float>(iy + .5f) * bin_h /
                                 static_cast<float>(grid_h);
            for (int64_t ix = 0; ix < grid_w; ++ix) {
              const float xx = start_w + pw * bin_w +
                               static_cast<float>(ix + .5f) * bin_w /
                                   static_cast<float>(grid_w);
              accumulate(image, bilinear_sample(yy, xx, h, w), c, acc.data());
            }
          }
          float* dst = pooled.data() + (ph * pooled_w + pw) * c;
          for (int64_t j = 0; j < c; ++j) dst[j] = acc[j] / count;
        }
      }
      float* dst = y + i * c * bins;  // (C, bins) of RoI i
      for (int64_t j = 0; j < c; ++j)
        for (int64_t bin = 0; bin < bins; ++bin)
          dst[j * bins + bin] = pooled[bin * c + j];
    }
  });
  return out;
}

}  // namespace nasbnn
