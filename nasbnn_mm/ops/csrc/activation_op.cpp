// rsign_* / rprelu_* of nasbnn_mm._ext: the training-time RSign (sign of
// x + b with the ApproxSign gradient) and RPReLU (PReLU(x + b_in) +
// b_out) of ReActNet on (N, C, H, W) float32 maps, forward and backward,
// each in one pass over the map (the module's PyTorch operations make
// three to five), the per-channel parameter gradients summed in the same
// pass. Work is split by channel on torch's threads; a channel's sums run
// over its N planes in order, so results do not depend on the threads.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "lane_sum.h"
#include "ops.h"

namespace nasbnn {
namespace {

// Rows of a map: plane (n, c) at data + (n * C + c) * HW.
struct Planes {
  int64_t n, c, hw;
};

Planes check_map(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat &&
                  t.dim() == 4 && t.is_contiguous(),
              name, ": expected a contiguous (N, C, H, W) CPU float32 map, "
              "got ", t.scalar_type(), " of shape ", t.sizes());
  return {t.size(0), t.size(1), t.size(2) * t.size(3)};
}

// The map of a backward and its gradient, checked to match.
Planes check_grad(const Tensor& grad, const Tensor& x, const char* name) {
  const Planes p = check_map(x, name);
  check_map(grad, name);
  TORCH_CHECK(grad.sizes() == x.sizes(), name, ": grad ", grad.sizes(),
              " and x ", x.sizes(), " differ");
  return p;
}

// Calls f(c) for every channel c, the channels split over torch's
// threads (a channel's planes all on one thread).
template <typename F>
void for_channels(const Planes& p, F f) {
  const int64_t grain =
      std::max<int64_t>(1, 16384 / std::max<int64_t>(p.n * p.hw, 1));
  at::parallel_for(0, p.c, grain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) f(c);
  });
}

}  // namespace

Tensor rsign_forward(const Tensor& x, const Tensor& bias) {
  const Planes p = check_map(x, "rsign_forward");
  const float* b = channel_vector(bias, p.c, "rsign_forward bias");
  Tensor y = at::empty_like(x);
  const float* xs = x.data_ptr<float>();
  float* ys = y.data_ptr<float>();
  for_channels(p, [&](int64_t c) {
    for (int64_t n = 0; n < p.n; ++n) {
      const int64_t o = (n * p.c + c) * p.hw;
      // sign(0) = +1 (eq. 1): + 0 turns -0 into +0
      for (int64_t i = 0; i < p.hw; ++i)
        ys[o + i] = std::copysign(1.f, (xs[o + i] + b[c]) + 0.f);
    }
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
  for_channels(p, [&](int64_t c) {
    float sum = 0.f;
    for (int64_t n = 0; n < p.n; ++n) {
      const int64_t o = (n * p.c + c) * p.hw;
      // ApproxSign: 2 * max(0, 1 - |x + b|) (the max as a mask: fmax
      // keeps a scalar loop)
      sum += lane_sum(p.hw, [&](int64_t k) {
        const float v = 1.f - std::fabs(xs[o + k] + b[c]);
        const float d = gs[o + k] * (keep_if(v > 0.f, v) * 2.f);
        gxs[o + k] = d;
        return d;
      });
    }
    gbs[c] = sum;
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
  for_channels(p, [&](int64_t c) {
    for (int64_t n = 0; n < p.n; ++n) {
      const int64_t o = (n * p.c + c) * p.hw;
      for (int64_t i = 0; i < p.hw; ++i) {
        const float t = xs[o + i] + bi[c];
        // F.prelu: t where t > 0, else a * t (as max(0,t) + a*min(0,t))
        ys[o + i] = (keep_if(t > 0.f, t) + keep_if(!(t > 0.f), a[c] * t)) +
                    bo[c];
      }
    }
  });
  return y;
}

std::vector<Tensor> rprelu_backward(const Tensor& grad, const Tensor& x,
                                    const Tensor& bias_in,
                                    const Tensor& weight) {
  const Planes p = check_grad(grad, x, "rprelu_backward");
  const float* bi = channel_vector(bias_in, p.c, "rprelu_backward bias_in");
  const float* a = channel_vector(weight, p.c, "rprelu_backward weight");
  Tensor gx = at::empty_like(x);
  Tensor g_bias_in = at::empty({p.c}, x.options());
  Tensor g_weight = at::empty({p.c}, x.options());
  Tensor g_bias_out = at::empty({p.c}, x.options());
  const float *xs = x.data_ptr<float>(), *gs = grad.data_ptr<float>();
  float* gxs = gx.data_ptr<float>();
  float *gbi = g_bias_in.data_ptr<float>(), *ga = g_weight.data_ptr<float>(),
        *gbo = g_bias_out.data_ptr<float>();
  for_channels(p, [&](int64_t c) {
    float s_in = 0.f, s_a = 0.f, s_out = 0.f;
    for (int64_t n = 0; n < p.n; ++n) {
      const int64_t o = (n * p.c + c) * p.hw;
      LaneAcc acc_in, acc_a, acc_out;
      for_lanes(p.hw, [&](int64_t k, int j) {
        const float g = gs[o + k], t = xs[o + k] + bi[c];
        const bool pos = t > 0.f;
        const float d = keep_if(pos, g) + keep_if(!pos, a[c] * g);
        gxs[o + k] = d;
        acc_in.v[j] += d;
        acc_a.v[j] += keep_if(!pos, t * g);
        acc_out.v[j] += g;
      });
      s_in += acc_in.total();
      s_a += acc_a.total();
      s_out += acc_out.total();
    }
    gbi[c] = s_in;
    ga[c] = s_a;
    gbo[c] = s_out;
  });
  return {gx, g_bias_in, g_weight, g_bias_out};
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
  for_channels(p, [&](int64_t c) {
    const float b_in = bi[c], slope = a[c], b_out = bo[c], b_sign = bs[c];
    for (int64_t n = 0; n < p.n; ++n) {
      const int64_t o = (n * p.c + c) * p.hw;
      // restrict: the outputs are fresh tensors, so the loop vectorizes
      const float* __restrict yp = ys + o;
      const float* __restrict rp = rs + o;
      float* __restrict op = os + o;
      float* __restrict sp = ss + o;
      for (int64_t i = 0; i < p.hw; ++i) {
        const float t = (yp[i] + rp[i]) + b_in;
        const float v =
            (keep_if(t > 0.f, t) + keep_if(!(t > 0.f), slope * t)) + b_out;
        op[i] = v;
        sp[i] = std::copysign(1.f, (v + b_sign) + 0.f);
      }
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
  const float* bi = channel_vector(bias_in, p.c, name);
  const float* a = channel_vector(weight, p.c, name);
  const float* bo = channel_vector(bias_out, p.c, name);
  const float* bs = channel_vector(sign_bias, p.c, name);
  Tensor gx = at::empty_like(y);
  std::vector<Tensor> sums;
  for (int k = 0; k < 4; ++k) sums.push_back(at::empty({p.c}, y.options()));
  const float *ys = y.data_ptr<float>(), *rs = r.data_ptr<float>();
  const float *go = grad_out.data_ptr<float>(),
              *gs = grad_sign.data_ptr<float>();
  float* gxs = gx.data_ptr<float>();
  float *gbi = sums[0].data_ptr<float>(), *ga = sums[1].data_ptr<float>(),
        *gbo = sums[2].data_ptr<float>(), *gbs = sums[3].data_ptr<float>();
  for_channels(p, [&](int64_t c) {
    float s_in = 0.f, s_a = 0.f, s_out = 0.f, s_sign = 0.f;
    for (int64_t n = 0; n < p.n; ++n) {
      const int64_t o = (n * p.c + c) * p.hw;
      LaneAcc acc_in, acc_a, acc_out, acc_sign;
      for_lanes(p.hw, [&](int64_t k, int j) {
        const float t = (ys[o + k] + rs[o + k]) + bi[c];
        const bool pos = t > 0.f;
        const float v = (keep_if(pos, t) + keep_if(!pos, a[c] * t)) + bo[c];
        const float u = 1.f - std::fabs(v + bs[c]);
        const float d_sign = gs[o + k] * (keep_if(u > 0.f, u) * 2.f);
        acc_sign.v[j] += d_sign;
        const float g = go[o + k] + d_sign;
        const float d = keep_if(pos, g) + keep_if(!pos, a[c] * g);
        gxs[o + k] = d;
        acc_in.v[j] += d;
        acc_a.v[j] += keep_if(!pos, t * g);
        acc_out.v[j] += g;
      });
      s_in += acc_in.total();
      s_a += acc_a.total();
      s_out += acc_out.total();
      s_sign += acc_sign.total();
    }
    gbi[c] = s_in;
    ga[c] = s_a;
    gbo[c] = s_out;
    gbs[c] = s_sign;
  });
  return {gx, sums[0], sums[1], sums[2], sums[3]};
}

}  // namespace nasbnn
