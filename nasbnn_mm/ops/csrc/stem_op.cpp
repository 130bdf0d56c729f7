// quantized_stem of nasbnn_mm._ext: the 8-bit stem of a packed NAS-BNN in
// one call (see StemArgs): the input's integer codes, their exact integer
// convolution with the weight codes, the folded affine and RPReLU, written
// in channels_last memory, and the first block's packed signs.
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
bool run_stem_u8(const Kernels& kern, StemArgs& args, const Tensor& w_t,
                 const at::TensorOptions& options) {
  const int64_t k = args.kernel, cin = args.in_channels, op = args.out_padded;
  const int64_t hp = args.height + 2 * args.padding,
                wp = args.width + 2 * args.padding;
  // Weights as (K, K, out_padded, 4) bytes and each channel's offset.
  std::vector<int8_t> w_s8(k * k * op * 4, 0);
  std::vector<int32_t> offset(op, 0);
  const float* w = w_t.data_ptr<float>();  // (C_in, K, K, out_padded)
  for (int64_t ci = 0; ci < cin; ++ci)
    for (int64_t t = 0; t < k * k; ++t)
      for (int64_t c = 0; c < op; ++c) {
        const int32_t code = static_cast<int32_t>(w[(ci * k * k + t) * op + c]);
        w_s8[(t * op + c) * 4 + ci] = static_cast<int8_t>(code);
        offset[c] += 128 * code;
      }
  // Every byte 128: the border's code 0 (and the unused channels').
  const Tensor codes = at::full({args.batch, hp, wp},
                                static_cast<int32_t>(0x80808080u),
                                options.dtype(at::kInt));
  args.codes_u8 = reinterpret_cast<uint32_t*>(codes.data_ptr<int32_t>());
  args.w_s8 = w_s8.data();
  args.w_offset = offset.data();
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

std::tuple<Tensor, Tensor> quantized_stem(
    const Tensor& x, bool quantize_input, double step, int64_t q_min,
    int64_t q_max, const Tensor& weight_codes, int64_t stride,
    int64_t padding,
    const Tensor& scale, const Tensor& shift, const Tensor& act_bias_in,
    const Tensor& act_weight, const Tensor& act_bias_out,
    int64_t pack_groups, const OptTensor& pack_bias) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() == 4 && x.numel() > 0,
              "quantized_stem: x must be a non-empty float32 CPU tensor (N, "
              "C, H, W), got ", x.scalar_type(), " ", x.sizes());
  const Tensor& w = weight_codes;
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kFloat &&
                  w.dim() == 4 && w.size(2) == w.size(3) &&
                  w.size(1) == x.size(1) && w.size(0) > 0,
              "quantized_stem: weight_codes must be float32 (C_out, ",
              x.size(1), ", K, K), got ", w.scalar_type(), " ", w.sizes());
  TORCH_CHECK(stride >= 1 && padding >= 0, "quantized_stem: stride ", stride,
              " must be >= 1 and padding ", padding, " >= 0");
  TORCH_CHECK(!quantize_input || (std::isfinite(step) && step > 0.0),
              "quantized_stem: step must be a positive finite number, got ",
              step);
  const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t cout = w.size(0), k = w.size(2);
  const double q_abs = std::max(std::abs(static_cast<double>(q_min)),
                                std::abs(static_cast<double>(q_max)));
  TORCH_CHECK(q_min < q_max, "quantized_stem: q_min ", q_min,
              " must be < q_max ", q_max);
  const int64_t hp = h + 2 * padding, wp = wd + 2 * padding;
  TORCH_CHECK(hp >= k && wp >= k, "quantized_stem: input ", h, " x ", wd,
              " with padding ", padding, " is smaller than the kernel ", k);
  const int64_t oh = (hp - k) / stride + 1, ow = (wp - k) / stride + 1;
  TORCH_CHECK(pack_groups >= 1 && cout % pack_groups == 0,
              "quantized_stem: ", cout, " channels not divisible by "
              "pack_groups ", pack_groups);
  const int64_t out_padded = (cout + 15) / 16 * 16;
  // Weight codes as (C_in, K, K, out_padded), zero past C_out.
  const Tensor w_t = at::zeros({cin, k, k, out_padded}, w.options());
  w_t.narrow(3, 0, cout).copy_(w.permute({1, 2, 3, 0}));
  for (const float* c = w_t.data_ptr<float>(), *end = c + w_t.numel();
       c < end; ++c)
    TORCH_CHECK(*c == std::nearbyint(*c) && *c >= q_min && *c <= q_max,
                "quantized_stem: weight_codes must be integers in [", q_min,
                ", ", q_max, "], got ", *c);
  const auto v_scale = padded_vector(scale, cout, out_padded,
                                     "quantized_stem: scale");
  const auto v_shift = padded_vector(shift, cout, out_padded,
                                     "quantized_stem: shift");
  const auto v_in = padded_vector(act_bias_in, cout, out_padded,
                                  "quantized_stem: act_bias_in");
  const auto v_w = padded_vector(act_weight, cout, out_padded,
                                 "quantized_stem: act_weight");
  const auto v_out = padded_vector(act_bias_out, cout, out_padded,
                                   "quantized_stem: act_bias_out");
  const auto v_pack_bias = padded_vector(pack_bias, cout, out_padded,
                                         "quantized_stem: pack_bias");

  const Tensor xc = x.contiguous();
  Tensor out = at::empty({n, cout, oh, ow}, x.options().memory_format(
                                                at::MemoryFormat::ChannelsLast));
  const int64_t pack_g = cout / pack_groups, words = words_for(pack_g);
  // Every 16 channels in one packed word: the epilogue packs.
  const bool pack_fused = pack_groups == 1 || pack_g % 16 == 0;
  Tensor packed = packed_output(c10::nullopt, n, oh, ow, pack_groups * words,
                                "quantized_stem");
  if (pack_fused) packed.zero_();
  float* out_data = out.data_ptr<float>();
  const bool exact_sums =
      quantize_input && cin * k * k * q_abs * q_abs <= kExactLimit;
  StemArgs args{
      xc.data_ptr<float>(), nullptr, w_t.data_ptr<float>(),
      out_data, quantize_input, exact_sums,
      static_cast<float>(step), static_cast<float>(q_min),
      static_cast<float>(q_max), n, cin, h, wd, padding, cout, out_padded, k,
      stride, oh, ow, v_scale.data(), v_shift.data(), v_in.data(),
      v_w.data(), v_out.data(),
      PackArgs{out_data,
               channel_vector(pack_bias, cout, "quantized_stem: pack_bias"),
               reinterpret_cast<uint64_t*>(packed.data_ptr()), cout,
               pack_groups, pack_g, words},
      pack_fused, v_pack_bias.data(), nullptr, nullptr, nullptr};
  const Kernels& kern = active_kernels();
  if (exact_sums && q_min >= -128 && q_max <= 127 && cin <= 4 &&
      kern.stem_rows_u8 && cpu_has_vnni() &&
      run_stem_u8(kern, args, w_t, x.options()))
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

}  // namespace nasbnn
