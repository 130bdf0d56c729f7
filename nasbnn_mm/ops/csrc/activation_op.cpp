// rsign_* / rprelu_* of nasbnn_mm._ext: the training-time RSign (sign of
// x + b with the ApproxSign gradient) and RPReLU (PReLU(x + b_in) +
// b_out) of ReActNet on (N, C, H, W) float32 maps, forward and backward,
// each in one pass over the map (the module's PyTorch operations make
// three to five), the per-channel parameter gradients summed in the same
// pass. Work is split by blocks of channels on torch's threads, each
// block read in memory order; a channel's sums run over its N planes in
// order, so results do not depend on the threads.
#include <algorithm>
#include <cmath>

#include "channel_planes.h"
#include "lane_sum.h"

namespace nasbnn {
namespace {

// RPReLU of a pre-activation t (= x + b_in): F.prelu's t where t > 0,
// else slope * t (as max(0, t) + slope * min(0, t)), then + b_out.
inline float rprelu(float t, float slope, float b_out) {
  return (keep_if(t > 0.f, t) + keep_if(!(t > 0.f), slope * t)) + b_out;
}

// sign(v) with sign(0) = +1 (eq. 1): + 0 turns -0 into +0.
inline float sign_of(float v) { return std::copysign(1.f, v + 0.f); }

// ApproxSign gradient at v (= x + b): g * 2 * max(0, 1 - |v|), the max as
// a mask (fmax keeps a scalar loop).
inline float approx_sign_grad(float g, float v) {
  const float u = 1.f - std::fabs(v);
  return g * (keep_if(u > 0.f, u) * 2.f);
}

// Operands of RPReLU's backward: the pre-activation x (+ r when fused with
// the following RSign), the gradients, the parameters (C, ) and the
// outputs: the input gradient and the per-channel parameter sums.
struct RPReLUGrad {
  const float *x, *r, *grad, *grad_sign;
  const float *bias_in, *slope, *bias_out, *sign_bias;
  float *grad_x, *sum_in, *sum_slope, *sum_out, *sum_sign;
};

// RPReLU's backward per channel, each plane's sums in LaneAcc lanes; with
// kSign first the ApproxSign gradient of sign(out + sign_bias) (out
// recomputed), added to the gradient of out.
template <bool kSign>
void rprelu_backward_planes(const Planes& p, const RPReLUGrad& a) {
  for (float* sum : {a.sum_in, a.sum_slope, a.sum_out, a.sum_sign})
    if (sum != nullptr) std::fill(sum, sum + p.c, 0.f);
  for_planes(p, [&](int64_t c, int64_t o) {
    LaneAcc acc_in, acc_slope, acc_out, acc_sign;
    for_lanes(p.hw, [&](int64_t k, int j) {
      float t, g = a.grad[o + k];
      if constexpr (kSign) {
        t = (a.x[o + k] + a.r[o + k]) + a.bias_in[c];
        const float d_sign = approx_sign_grad(
            a.grad_sign[o + k],
            rprelu(t, a.slope[c], a.bias_out[c]) + a.sign_bias[c]);
        acc_sign.v[j] += d_sign;
        g = g + d_sign;
      } else {
        t = a.x[o + k] + a.bias_in[c];
      }
      const bool pos = t > 0.f;
      const float d = keep_if(pos, g) + keep_if(!pos, a.slope[c] * g);
      a.grad_x[o + k] = d;
      acc_in.v[j] += d;
      acc_slope.v[j] += keep_if(!pos, t * g);
      acc_out.v[j] += g;
    });
    a.sum_in[c] += acc_in.total();
    a.sum_slope[c] += acc_slope.total();
    a.sum_out[c] += acc_out.total();
    if constexpr (kSign) a.sum_sign[c] += acc_sign.total();
  });
}

// count (C, ) tensors for a backward's per-channel parameter sums.
std::vector<Tensor> channel_sums(const Planes& p, const Tensor& like,
                                 int count) {
  std::vector<Tensor> sums;
  for (int k = 0; k < count; ++k)
    sums.push_back(at::empty({p.c}, like.options()));
  return sums;
}

float* data(Tensor& t) { return t.data_ptr<float>(); }

}  // namespace

Tensor rsign_forward(const Tensor& x, const Tensor& bias) {
  const Planes p = check_map(x, "rsign_forward");
  const float* b = channel_vector(bias, p.c, "rsign_forward bias");
  Tensor y = at::empty_like(x);
  const float* xs = x.data_ptr<float>();
  float* ys = y.data_ptr<float>();
  for_planes(p, [&](int64_t c, int64_t o) {
    for (int64_t i = 0; i < p.hw; ++i) ys[o + i] = sign_of(xs[o + i] + b[c]);
  });
  return y;
}

std::tuple<Tensor, Tensor> rsign_backward(const Tensor& grad, const Tensor& x,
                                          const Tensor& bias) {
  const Planes p = check_grad(grad, x, "rsign_backward");
  const float* b = channel_vector(bias, p.c, "rsign_backward bias");
  Tensor gx = at::empty_like(x);
  Tensor gb = at::empty({p.c}, bias.options());
  const float *xs = x.data_ptr<float>(), *gs = grad.data_ptr<float>();
  float *gxs = gx.data_ptr<float>(), *gbs = gb.data_ptr<float>();
  std::fill(gbs, gbs + p.c, 0.f);
  for_planes(p, [&](int64_t c, int64_t o) {
    gbs[c] += lane_sum(p.hw, [&](int64_t k) {
      const float d = approx_sign_grad(gs[o + k], xs[o + k] + b[c]);
      gxs[o + k] = d;
      return d;
    });
  });
  return {gx, gb};
}

Tensor rprelu_forward(const Tensor& x, const Tensor& bias_in,
                      const Tensor& weight, const Tensor& bias_out) {
  const Planes p = check_map(x, "rprelu_forward");
  const float* bi = channel_vector(bias_in, p.c, "rprelu_forward bias_in");
  const float* a = channel_vector(weight, p.c, "rprelu_forward weight");
  const float* bo = channel_vector(bias_out, p.c, "rprelu_forward bias_out");
  Tensor y = at::empty_like(x);
  const float* xs = x.data_ptr<float>();
  float* ys = y.data_ptr<float>();
  for_planes(p, [&](int64_t c, int64_t o) {
    for (int64_t i = 0; i < p.hw; ++i)
      ys[o + i] = rprelu(xs[o + i] + bi[c], a[c], bo[c]);
  });
  return y;
}

std::vector<Tensor> rprelu_backward(const Tensor& grad, const Tensor& x,
                                    const Tensor& bias_in,
                                    const Tensor& weight) {
  const Planes p = check_grad(grad, x, "rprelu_backward");
  Tensor gx = at::empty_like(x);
  std::vector<Tensor> sums = channel_sums(p, x, 3);
  rprelu_backward_planes<false>(
      p, {x.data_ptr<float>(), nullptr, grad.data_ptr<float>(), nullptr,
          channel_vector(bias_in, p.c, "rprelu_backward bias_in"),
          channel_vector(weight, p.c, "rprelu_backward weight"), nullptr,
          nullptr, data(gx), data(sums[0]), data(sums[1]), data(sums[2]),
          nullptr});
  return {gx, sums[0], sums[1], sums[2]};
}

// RPReLU of y + r, then RSign of its output (a block's first half):
// {out, sign}, the same float operations as rprelu_forward(y + r) and
// rsign_forward(out) in one pass.
std::vector<Tensor> rprelu_rsign_forward(const Tensor& y, const Tensor& r,
                                         const Tensor& bias_in,
                                         const Tensor& weight,
                                         const Tensor& bias_out,
                                         const Tensor& sign_bias) {
  const Planes p = check_grad(r, y, "rprelu_rsign_forward");
  const char* name = "rprelu_rsign_forward parameters";
  const float* bi = channel_vector(bias_in, p.c, name);
  const float* a = channel_vector(weight, p.c, name);
  const float* bo = channel_vector(bias_out, p.c, name);
  const float* bs = channel_vector(sign_bias, p.c, name);
  Tensor out = at::empty_like(y), sign = at::empty_like(y);
  const float *ys = y.data_ptr<float>(), *rs = r.data_ptr<float>();
  float *os = out.data_ptr<float>(), *ss = sign.data_ptr<float>();
  for_planes(p, [&](int64_t c, int64_t o) {
    const float b_in = bi[c], slope = a[c], b_out = bo[c], b_sign = bs[c];
    // restrict: the outputs are fresh tensors, so the loop vectorizes
    const float* __restrict yp = ys + o;
    const float* __restrict rp = rs + o;
    float* __restrict op = os + o;
    float* __restrict sp = ss + o;
    for (int64_t i = 0; i < p.hw; ++i) {
      const float v = rprelu((yp[i] + rp[i]) + b_in, slope, b_out);
      op[i] = v;
      sp[i] = sign_of(v + b_sign);
    }
  });
  return {out, sign};
}

// Gradients of rprelu_rsign_forward given those of out and sign: {the
// gradient of y (= that of r), bias_in, weight, bias_out, sign_bias}; the
// element-wise values and per-channel sums as rsign_backward, the sum of
// the two gradients of out, then rprelu_backward compute them.
std::vector<Tensor> rprelu_rsign_backward(
    const Tensor& grad_out, const Tensor& grad_sign, const Tensor& y,
    const Tensor& r, const Tensor& bias_in, const Tensor& weight,
    const Tensor& bias_out, const Tensor& sign_bias) {
  const Planes p = check_grad(grad_out, y, "rprelu_rsign_backward");
  check_grad(grad_sign, y, "rprelu_rsign_backward");
  check_grad(r, y, "rprelu_rsign_backward");
  const char* name = "rprelu_rsign_backward parameters";
  Tensor gx = at::empty_like(y);
  std::vector<Tensor> sums = channel_sums(p, y, 4);
  rprelu_backward_planes<true>(
      p, {y.data_ptr<float>(), r.data_ptr<float>(),
          grad_out.data_ptr<float>(), grad_sign.data_ptr<float>(),
          channel_vector(bias_in, p.c, name),
          channel_vector(weight, p.c, name),
          channel_vector(bias_out, p.c, name),
          channel_vector(sign_bias, p.c, name), data(gx), data(sums[0]),
          data(sums[1]), data(sums[2]), data(sums[3])});
  return {gx, sums[0], sums[1], sums[2], sums[3]};
}

}  // namespace nasbnn
