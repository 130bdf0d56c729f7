// weight_norm_forward / weight_norm_backward of nasbnn_mm._ext: the
// channel-wise weight normalization of NAS-BNN (eq. 6, or the official
// code's unbiased-std variant), then optionally alpha * sign with the
// clipped straight-through gradient, forward and backward. One output
// channel (a row of the flattened weight) at a time, on torch's threads:
// a row stays in L1 across its passes, where the composed PyTorch
// operations make ~14 passes over the whole weight in memory.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "lane_sum.h"
#include "ops.h"

namespace nasbnn {
namespace {

// Row r's normalized value i: (w - mean) * scale ('paper') or
// (w - mean) / std ('official'); `norm` holds scale or std.
template <bool Official>
inline float normed(float w, float mean, float norm) {
  return Official ? (w - mean) / norm : (w - mean) * norm;
}

void check_rows(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat &&
                  t.dim() == 2 && t.stride(1) == 1,
              "weight_norm: ", name,
              " must be a 2-D CPU float32 tensor with contiguous rows, got ",
              t.scalar_type(), " of shape ", t.sizes(), " and strides ",
              t.strides());
}

template <bool Official, bool Binary>
void forward_rows(const Tensor& w, double eps, Tensor& out, Tensor& mean,
                  Tensor& norm, Tensor& alpha) {
  const int64_t rows = w.size(0), n = w.size(1), ld = w.stride(0);
  const float* x = w.data_ptr<float>();
  float* y = out.data_ptr<float>();
  float *m = mean.data_ptr<float>(), *nm = norm.data_ptr<float>(),
        *al = alpha.data_ptr<float>();
  const float fn = static_cast<float>(n), feps = static_cast<float>(eps);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * ld;
      float* yr = y + r * n;
      const float mu = lane_sum(n, [&](int64_t i) { return xr[i]; }) / fn;
      const float q = lane_sum(n, [&](int64_t i) {
        const float c = xr[i] - mu;
        return c * c;
      });
      // 'official': the unbiased std (n = 1: 0 / 0 = nan, as torch.std)
      const float s = Official ? std::sqrt(q / (fn - 1.f))
                               : 1.f / std::sqrt(q / fn + feps);
      m[r] = mu;
      nm[r] = s;
      if (!Binary) {
        al[r] = 1.f;
        for (int64_t i = 0; i < n; ++i) yr[i] = normed<Official>(xr[i], mu, s);
        continue;
      }
      const float a = lane_sum(n, [&](int64_t i) {
                        return std::fabs(normed<Official>(xr[i], mu, s));
                      }) /
                      fn;
      al[r] = a;
      // sign(0) = +1 (eq. 1): + 0 turns -0 into +0
      for (int64_t i = 0; i < n; ++i)
        yr[i] = std::copysign(a, normed<Official>(xr[i], mu, s) + 0.f);
    }
  });
}

template <bool Official, bool Binary>
void backward_rows(const Tensor& grad, const Tensor& w, const Tensor& mean,
                   const Tensor& norm, const Tensor& alpha, Tensor& dw) {
  const int64_t rows = w.size(0), n = w.size(1), ld = w.stride(0),
                lg = grad.stride(0);
  const float *x = w.data_ptr<float>(), *g = grad.data_ptr<float>();
  const float *m = mean.data_ptr<float>(), *nm = norm.data_ptr<float>(),
              *al = alpha.data_ptr<float>();
  float* d = dw.data_ptr<float>();
  const float fn = static_cast<float>(n);
  const float coef =
      Official ? 1.f / static_cast<float>(std::max<int64_t>(n - 1, 1))
               : 1.f / fn;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float *xr = x + r * ld, *gr = g + r * lg;
      float* dr = d + r * n;
      const float mu = m[r], s = nm[r];
      // the straight-through clip: the gradient passes where |W_n| <= 1
      auto clipped = [&](int64_t i) {
        return Binary ? keep_if(
                            std::fabs(normed<Official>(xr[i], mu, s)) <= 1.f,
                            gr[i])
                      : gr[i];
      };
      const float mean_g = lane_sum(n, clipped) / fn;
      const float dot = lane_sum(n, [&](int64_t i) {
        return clipped(i) * normed<Official>(xr[i], mu, s);
      });
      // d normalized / d W: 1 / std or scale; binary: times alpha
      const float out_scale = (Official ? 1.f / s : s) * al[r];
      const float k = -coef * dot;
      for (int64_t i = 0; i < n; ++i)
        dr[i] = ((clipped(i) - mean_g) +
                 k * normed<Official>(xr[i], mu, s)) *
                out_scale;
    }
  });
}

// f(official, binary) with both as compile-time constants.
template <typename F>
void with_style(bool official, bool binary, F f) {
  using Yes = std::true_type;
  using No = std::false_type;
  if (official && binary)
    f(Yes{}, Yes{});
  else if (official)
    f(Yes{}, No{});
  else if (binary)
    f(No{}, Yes{});
  else
    f(No{}, No{});
}

}  // namespace

std::vector<Tensor> weight_norm_forward(const Tensor& weight, bool official,
                                        double eps, bool binary) {
  check_rows(weight, "weight");
  const int64_t rows = weight.size(0);
  Tensor out = at::empty(weight.sizes(), weight.options());
  Tensor mean = at::empty({rows}, weight.options());
  Tensor norm = at::empty({rows}, weight.options());
  Tensor alpha = at::empty({rows}, weight.options());
  with_style(official, binary, [&](auto o, auto b) {
    forward_rows<o, b>(weight, eps, out, mean, norm, alpha);
  });
  return {out, mean, norm, alpha};
}

Tensor weight_norm_backward(const Tensor& grad, const Tensor& weight,
                            const Tensor& mean, const Tensor& norm,
                            const Tensor& alpha, bool official, bool binary) {
  check_rows(weight, "weight");
  check_rows(grad, "grad");
  TORCH_CHECK(grad.sizes() == weight.sizes(),
              "weight_norm_backward: grad ", grad.sizes(), " and weight ",
              weight.sizes(), " differ");
  const int64_t rows = weight.size(0);
  for (const Tensor* t : {&mean, &norm, &alpha})
    channel_vector(*t, rows, "weight_norm_backward statistics");
  Tensor dw = at::empty(weight.sizes(), weight.options());
  with_style(official, binary, [&](auto o, auto b) {
    backward_rows<o, b>(grad, weight, mean, norm, alpha, dw);
  });
  return dw;
}

}  // namespace nasbnn
