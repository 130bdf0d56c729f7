// quantized_stem of nasbnn_mm._ext: the 8-bit stem of a packed NAS-BNN in
// one call (see StemArgs): the input's integer codes, their exact integer
// convolution with the weight codes, the folded affine and RPReLU, written
// in channels_last memory, and the first block's packed signs. The weight
// side (StemWeights) is checked and laid out once per PackedLogits, and on
// every quantized_stem call.
#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>
#include <vector>

#include "ops.h"

namespace nasbnn {
namespace {

// Largest magnitude of a sum of products that float32 holds exactly.
constexpr double kExactLimit = 16777216.0;  // 2^24

// A (C) float32 vector (zeros if not given) in `out_padded` floats.
std::vector<float> padded_vector(const OptTensor& v, int64_t channels,
                                 int64_t out_padded, const char* name) {
  std::vector<float> out(out_padded, 0.f);
  if (const float* data = channel_vector(v, channels, name))
    std::copy(data, data + channels, out.begin());
  return out;
}

// The 8-bit path (StemArgs::codes_u8) on `args`; false, with nothing
// written to the outputs, if an input is NaN (the float path keeps it).
bool run_stem_u8(const Kernels& kern, StemArgs& args, const StemWeights& s,
                 const at::TensorOptions& options) {
  const int64_t hp = args.height + 2 * args.padding,
                wp = args.width + 2 * args.padding;
  // Every byte 128: the border's code 0 (and the unused channels').
  const Tensor codes = at::full({args.batch, hp, wp},
                                static_cast<int32_t>(0x80808080u),
                                options.dtype(at::kInt));
  args.codes_u8 = reinterpret_cast<uint32_t*>(codes.data_ptr<int32_t>());
  args.w_s8 = s.w_s8.data();
  args.w_offset = s.w_offset.data();
  std::atomic<bool> finite{true};
  at::parallel_for(0, args.batch * args.height, 16, [&](int64_t b, int64_t e) {
    if (!kern.stem_quantize_u8(args, b, e)) finite = false;
  });
  if (!finite) return false;
  at::parallel_for(0, args.batch * args.out_h, 1, [&](int64_t b, int64_t e) {
    kern.stem_rows_u8(args, b, e);
  });
  return true;
}

}  // namespace

StemWeights stem_weights(const StemCall& call) {
  const StemCall& c = call;
  const Tensor& w = c.weight_codes;
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kFloat &&
                  w.dim() == 4 && w.size(2) == w.size(3) && w.size(0) > 0,
              "quantized_stem: weight_codes must be float32 (C_out, C_in, "
              "K, K), got ", w.scalar_type(), " ", w.sizes());
  TORCH_CHECK(c.stride >= 1 && c.padding >= 0, "quantized_stem: stride ",
              c.stride, " must be >= 1 and padding ", c.padding, " >= 0");
  TORCH_CHECK(!c.quantize_input || (std::isfinite(c.step) && c.step > 0.0),
              "quantized_stem: step must be a positive finite number, got ",
              c.step);
  TORCH_CHECK(c.q_min < c.q_max, "quantized_stem: q_min ", c.q_min,
              " must be < q_max ", c.q_max);
  const int64_t cout = w.size(0), cin = w.size(1), k = w.size(2);
  TORCH_CHECK(c.pack_groups >= 1 && cout % c.pack_groups == 0,
              "quantized_stem: ", cout, " channels not divisible by "
              "pack_groups ", c.pack_groups);
  const int64_t op = (cout + 15) / 16 * 16;
  // Weight codes as (C_in, K, K, out_padded), zero past C_out.
  Tensor w_t = at::zeros({cin, k, k, op}, w.options());
  w_t.narrow(3, 0, cout).copy_(w.permute({1, 2, 3, 0}));
  for (const float* v = w_t.data_ptr<float>(), *end = v + w_t.numel();
       v < end; ++v)
    TORCH_CHECK(*v == std::nearbyint(*v) && *v >= c.q_min && *v <= c.q_max,
                "quantized_stem: weight_codes must be integers in [",
                c.q_min, ", ", c.q_max, "], got ", *v);
  const double q_abs = std::max(std::abs(static_cast<double>(c.q_min)),
                                std::abs(static_cast<double>(c.q_max)));
  const bool exact =
      c.quantize_input && cin * k * k * q_abs * q_abs <= kExactLimit;
  StemWeights s{call, exact, cin, cout, k, op, w_t,
                padded_vector(c.scale, cout, op, "quantized_stem: scale"),
                padded_vector(c.shift, cout, op, "quantized_stem: shift"),
                padded_vector(c.act_bias_in, cout, op,
                              "quantized_stem: act_bias_in"),
                padded_vector(c.act_weight, cout, op,
                              "quantized_stem: act_weight"),
                padded_vector(c.act_bias_out, cout, op,
                              "quantized_stem: act_bias_out"),
                padded_vector(c.pack_bias, cout, op,
                              "quantized_stem: pack_bias"),
                {}, {}};
  // The 8-bit path's weights: (K, K, out_padded, 4) bytes and 128 x each
  // channel's code sum.
  s.u8 = exact && s.call.q_min >= -128 && s.call.q_max <= 127 && cin <= 4;
  if (s.u8) {
    s.w_s8.assign(k * k * op * 4, 0);
    s.w_offset.assign(op, 0);
    const float* wt = w_t.data_ptr<float>();
    for (int64_t ci = 0; ci < cin; ++ci)
      for (int64_t t = 0; t < k * k; ++t)
        for (int64_t o = 0; o < op; ++o) {
          const auto code = static_cast<int32_t>(wt[(ci * k * k + t) * op + o]);
          s.w_s8[(t * op + o) * 4 + ci] = static_cast<int8_t>(code);
          s.w_offset[o] += 128 * code;
        }
  }
  return s;
}

std::tuple<Tensor, Tensor> run_stem(const StemWeights& s, const Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() == 4 && x.numel() > 0,
              "quantized_stem: x must be a non-empty float32 CPU tensor (N, "
              "C, H, W), got ", x.scalar_type(), " ", x.sizes());
  TORCH_CHECK(x.size(1) == s.cin, "quantized_stem: x has ", x.size(1),
              " channels, the weight codes ", s.cin);
  const StemCall& c = s.call;
  const int64_t n = x.size(0), h = x.size(2), wd = x.size(3);
  const int64_t cin = s.cin, cout = s.cout, k = s.k, padding = c.padding;
  const int64_t hp = h + 2 * padding, wp = wd + 2 * padding;
  TORCH_CHECK(hp >= k && wp >= k, "quantized_stem: input ", h, " x ", wd,
              " with padding ", padding, " is smaller than the kernel ", k);
  const int64_t oh = (hp - k) / c.stride + 1, ow = (wp - k) / c.stride + 1;
  const Tensor xc = x.contiguous();
  Tensor out = at::empty(
      {n, cout, oh, ow},
      x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t pack_g = cout / c.pack_groups, words = words_for(pack_g);
  // Every 16 channels in one packed word: the epilogue packs.
  const bool pack_fused = c.pack_groups == 1 || pack_g % 16 == 0;
  Tensor packed = packed_output(c10::nullopt, n, oh, ow,
                                c.pack_groups * words, "quantized_stem");
  if (pack_fused) packed.zero_();
  float* out_data = out.data_ptr<float>();
  StemArgs args{
      xc.data_ptr<float>(), nullptr, s.w_t.data_ptr<float>(),
      out_data, c.quantize_input, s.exact,
      static_cast<float>(c.step), static_cast<float>(c.q_min),
      static_cast<float>(c.q_max), n, cin, h, wd, padding, cout,
      s.out_padded, k, c.stride, oh, ow, s.scale.data(), s.shift.data(),
      s.act_bias_in.data(), s.act_weight.data(), s.act_bias_out.data(),
      PackArgs{out_data,
               channel_vector(c.pack_bias, cout, "quantized_stem: pack_bias"),
               reinterpret_cast<uint64_t*>(packed.data_ptr()), cout,
               c.pack_groups, pack_g, words},
      pack_fused, s.pack_bias.data(), nullptr, nullptr, nullptr};
  const Kernels& kern = active_kernels();
  if (s.u8 && kern.stem_rows_u8 && cpu_has_vnni() &&
      run_stem_u8(kern, args, s, x.options()))
    return {out, packed};
  const Tensor codes = at::zeros({n, cin, hp, wp}, x.options());
  args.codes = codes.data_ptr<float>();
  at::parallel_for(0, n * cin * h, 16, [&](int64_t b, int64_t e) {
    kern.stem_quantize(args, b, e);
  });
  at::parallel_for(0, n * oh, 1, [&](int64_t b, int64_t e) {
    kern.stem_rows(args, b, e);
  });
  return {out, packed};
}

std::tuple<Tensor, Tensor> quantized_stem(
    const Tensor& x, bool quantize_input, double step, int64_t q_min,
    int64_t q_max, const Tensor& weight_codes, int64_t stride,
    int64_t padding,
    const Tensor& scale, const Tensor& shift, const Tensor& act_bias_in,
    const Tensor& act_weight, const Tensor& act_bias_out,
    int64_t pack_groups, const OptTensor& pack_bias) {
  return run_stem(
      stem_weights(StemCall{quantize_input, step, q_min, q_max, weight_codes,
                            stride, padding, scale, shift, act_bias_in,
                            act_weight, act_bias_out, pack_groups,
                            pack_bias}),
      x);
}

}  // namespace nasbnn
