// batch_norm_forward / batch_norm_backward of nasbnn_mm._ext: training-
// mode batch normalization (batch statistics, biased variance in the
// output, unbiased in the running variance) of a contiguous (N, C, H, W)
// float32 map, forward and backward. Blocks of channels on torch's
// threads, each block's planes read in memory order (sample by sample: a
// contiguous run of the block's channels) and small enough to stay in L2
// across the passes (mean, variance, output; in the backward the two
// sums, then the gradient). A channel's sums add its planes in order
// (value k of a plane to lane k % kLanesSum, the lanes added up at the
// end), so results do not depend on the threads or the blocks.
#include <array>
#include <cmath>
#include <vector>

#include "channel_planes.h"
#include "lane_sum.h"

namespace nasbnn {
namespace {

// sums[j][c - c0] = sum of f(c, i)[j] over the values i of channel c, for
// the Sums (1 or 2) values f returns (a std::array<float, Sums>).
template <size_t Sums, typename F>
void block_sums(const Planes& p, int64_t c0, int64_t c1,
                std::vector<LaneAcc>& acc,
                const std::array<float*, Sums>& sums, F f) {
  acc.assign(Sums * (c1 - c0), LaneAcc{});
  for_block_planes(p, c0, c1, [&](int64_t c, int64_t o) {
    LaneAcc* a = &acc[Sums * (c - c0)];
    for_lanes(p.hw, [&](int64_t k, int lane) {
      const std::array<float, Sums> v = f(c, o + k);
      for (size_t j = 0; j < Sums; ++j) a[j].v[lane] += v[j];
    });
  });
  for (int64_t c = c0; c < c1; ++c)
    for (size_t j = 0; j < Sums; ++j)
      sums[j][c - c0] = acc[Sums * (c - c0) + j].total();
}

}  // namespace

std::vector<Tensor> batch_norm_forward(const Tensor& x, const Tensor& weight,
                                       const Tensor& bias,
                                       const OptTensor& running_mean,
                                       const OptTensor& running_var,
                                       double momentum, double eps) {
  const Planes p = check_map(x, "batch_norm_forward");
  const int64_t count = p.n * p.hw;
  TORCH_CHECK(count > 1, "batch_norm_forward: expected more than 1 value "
              "per channel, got input of shape ", x.sizes());
  const char* name = "batch_norm_forward parameters";
  const float* w = channel_vector(weight, p.c, name);
  const float* b = channel_vector(bias, p.c, name);
  float* rm = const_cast<float*>(channel_vector(running_mean, p.c, name));
  float* rv = const_cast<float*>(channel_vector(running_var, p.c, name));
  TORCH_CHECK((rm == nullptr) == (rv == nullptr),
              "batch_norm_forward: running_mean and running_var go together");
  Tensor y = at::empty_like(x);
  Tensor mean = at::empty({p.c}, x.options());
  Tensor invstd = at::empty({p.c}, x.options());
  const float* xs = x.data_ptr<float>();
  float *ys = y.data_ptr<float>(), *ms = mean.data_ptr<float>(),
        *is = invstd.data_ptr<float>();
  const float m = static_cast<float>(momentum), fe = static_cast<float>(eps);
  const float fc = static_cast<float>(count);
  for_channel_blocks(p, [&](int64_t c0, int64_t c1) {
    std::vector<LaneAcc> acc;
    std::vector<float> q(c1 - c0), scale(c1 - c0), shift(c1 - c0);
    block_sums<1>(p, c0, c1, acc, {ms + c0}, [&](int64_t, int64_t i) {
      return std::array<float, 1>{xs[i]};
    });
    for (int64_t c = c0; c < c1; ++c) ms[c] /= fc;
    block_sums<1>(p, c0, c1, acc, {q.data()}, [&](int64_t c, int64_t i) {
      const float d = xs[i] - ms[c];
      return std::array<float, 1>{d * d};
    });
    for (int64_t c = c0; c < c1; ++c) {
      const float mu = ms[c], var_sum = q[c - c0];
      const float inv = 1.f / std::sqrt(var_sum / fc + fe);
      is[c] = inv;
      if (rm != nullptr) {
        rm[c] = m * mu + (1.f - m) * rm[c];
        rv[c] = m * (var_sum / (fc - 1.f)) + (1.f - m) * rv[c];
      }
      // y = x * scale + shift, as ATen's kernel
      scale[c - c0] = inv * w[c];
      shift[c - c0] = b[c] - mu * scale[c - c0];
    }
    for_block_planes(p, c0, c1, [&](int64_t c, int64_t o) {
      const float* __restrict xp = xs + o;
      float* __restrict yp = ys + o;
      const float sc = scale[c - c0], sh = shift[c - c0];
      for (int64_t k = 0; k < p.hw; ++k) yp[k] = xp[k] * sc + sh;
    });
  });
  return {y, mean, invstd};
}

std::vector<Tensor> batch_norm_backward(const Tensor& grad, const Tensor& x,
                                        const Tensor& weight,
                                        const Tensor& mean,
                                        const Tensor& invstd) {
  const Planes p = check_grad(grad, x, "batch_norm_backward");
  const char* name = "batch_norm_backward parameters";
  const float* w = channel_vector(weight, p.c, name);
  const float* ms = channel_vector(mean, p.c, name);
  const float* is = channel_vector(invstd, p.c, name);
  Tensor gx = at::empty_like(x);
  Tensor gw = at::empty({p.c}, x.options());
  Tensor gb = at::empty({p.c}, x.options());
  const float *xs = x.data_ptr<float>(), *gs = grad.data_ptr<float>();
  float *gxs = gx.data_ptr<float>(), *gws = gw.data_ptr<float>(),
        *gbs = gb.data_ptr<float>();
  const float fc = static_cast<float>(p.n * p.hw);
  for_channel_blocks(p, [&](int64_t c0, int64_t c1) {
    std::vector<LaneAcc> acc;
    std::vector<float> dot(c1 - c0), k(c1 - c0), g_mean(c1 - c0),
        scale(c1 - c0);
    block_sums<2>(p, c0, c1, acc, {gbs + c0, dot.data()},
                  [&](int64_t c, int64_t i) {
                    return std::array<float, 2>{gs[i],
                                                gs[i] * (xs[i] - ms[c])};
                  });
    for (int64_t c = c0; c < c1; ++c) {
      const float inv = is[c], d = dot[c - c0];
      gws[c] = d * inv;
      // dx = (g - mean(g) - (x - mu) * k) * inv * w, as ATen's kernel
      k[c - c0] = d * inv * inv / fc;
      g_mean[c - c0] = gbs[c] / fc;
      scale[c - c0] = inv * w[c];
    }
    for_block_planes(p, c0, c1, [&](int64_t c, int64_t o) {
      const float* __restrict xp = xs + o;
      const float* __restrict gp = gs + o;
      float* __restrict dp = gxs + o;
      const int64_t j = c - c0;
      const float mu = ms[c], kc = k[j], gm = g_mean[j], sc = scale[j];
      for (int64_t i = 0; i < p.hw; ++i)
        dp[i] = ((gp[i] - gm) - (xp[i] - mu) * kc) * sc;
    });
  });
  return {gx, gw, gb};
}

}  // namespace nasbnn
