// binary_conv2d of nasbnn_mm._ext: argument checks, outputs, threads.
#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "ops.h"

namespace nasbnn {
namespace {

// Pixels per work unit of the 1x1 GEMM path.
constexpr int64_t kGemmUnit = 64;

// The float output (N, C, OH, OW) in channels_last memory, or the checked
// given one.
Tensor float_output(const OptTensor& out, const Tensor& like, int64_t n,
                    int64_t c, int64_t oh, int64_t ow) {
  if (!given(out))
    return at::empty({n, c, oh, ow},
                     like.options().dtype(at::kFloat).memory_format(
                         at::MemoryFormat::ChannelsLast));
  TORCH_CHECK(out->device().is_cpu() && out->scalar_type() == at::kFloat &&
                  out->sizes() == at::IntArrayRef({n, c, oh, ow}) &&
                  out->is_contiguous(at::MemoryFormat::ChannelsLast),
              "binary_conv2d: out must be a float32 CPU tensor (", n, ", ",
              c, ", ", oh, ", ", ow, ") in channels_last memory, got ",
              out->scalar_type(), " ", out->sizes());
  return *out;
}

}  // namespace

// Runs a convolution on torch's intra-op threads. Work units are output
// rows (GEMM path: kGemmUnit pixels); where there are fewer than 8 units
// per thread (small maps, batch 1) each unit is also split along the
// weight blocks, so that late layers (7x7) keep every thread busy. Every
// output is computed by the same code whatever the split: the results do
// not depend on the number of threads.
void run_conv(const Kernels& kern, const ConvArgs& args, bool gemm) {
  const int64_t pixels = args.batch * args.out_h * args.out_w;
  const int64_t units = gemm ? (pixels + kGemmUnit - 1) / kGemmUnit
                             : args.batch * args.out_h;
  const int64_t blocks = args.groups * args.out_blocks;
  const int64_t threads = at::get_num_threads();
  int64_t splits = 1;
  if (threads > 1 && units < 8 * threads)
    splits = std::min(blocks, (8 * threads + units - 1) / units);
  const auto body = [&](int64_t unit_begin, int64_t unit_end,
                        int64_t block_begin, int64_t block_end) {
    if (gemm)
      kern.gemm_rows(args, unit_begin * kGemmUnit,
                     std::min(pixels, unit_end * kGemmUnit), block_begin,
                     block_end);
    else
      kern.conv_rows(args, unit_begin, unit_end, block_begin, block_end);
  };
  if (splits == 1) {
    at::parallel_for(0, units, 1, [&](int64_t b, int64_t e) {
      body(b, e, 0, blocks);
    });
    return;
  }
  at::parallel_for(0, units * splits, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t unit = i / splits, part = i % splits;
      body(unit, unit + 1, part * blocks / splits,
           (part + 1) * blocks / splits);
    }
  });
}

ConvPlan plan_conv(const Tensor& x, const Tensor& weight, int64_t in_channels,
                   int64_t out_channels, int64_t stride, int64_t padding,
                   const OptTensor& scale, const OptTensor& bias,
                   const OptTensor& residual, const OptTensor& act_bias_in,
                   const OptTensor& act_weight,
                   const OptTensor& act_bias_out, bool pool_residual,
                   int64_t pack_groups, const OptTensor& pack_bias,
                   const OptTensor& out, const OptTensor& packed_out,
                   bool pool_output) {
  check_packed(x, "binary_conv2d: x");
  check_packed(weight, "binary_conv2d: weight");
  TORCH_CHECK(x.dim() == 4, "binary_conv2d: x must be (N, H, W, G * Wg), ",
              "got ", x.sizes());
  TORCH_CHECK(weight.dim() == 6 && weight.size(5) == kLanes &&
                  weight.size(2) == weight.size(3),
              "binary_conv2d: weight must be blocked (G, OCB, K, K, Wg, ",
              kLanes, "), got ", weight.sizes());
  const int64_t groups = weight.size(0), k = weight.size(2),
                words = weight.size(4);
  TORCH_CHECK(k >= 1 && k <= kMaxKernel, "binary_conv2d: kernel size ", k,
              " not in [1, ", kMaxKernel, "]");
  TORCH_CHECK(in_channels % groups == 0 && out_channels % groups == 0,
              "binary_conv2d: channels ", in_channels, " -> ", out_channels,
              " not divisible by groups ", groups);
  const int64_t in_g = in_channels / groups, out_g = out_channels / groups;
  TORCH_CHECK(words == words_for(in_g) && x.size(3) == groups * words,
              "binary_conv2d: x has ", x.size(3), " words per pixel and ",
              "weight ", words, " per group; ", in_channels, " channels in ",
              groups, " groups need ", groups * words_for(in_g));
  TORCH_CHECK(weight.size(1) == (out_g + kLanes - 1) / kLanes,
              "binary_conv2d: weight has ", weight.size(1), " blocks per ",
              "group; ", out_g, " channels per group need ",
              (out_g + kLanes - 1) / kLanes);
  TORCH_CHECK(stride >= 1 && padding >= 0, "binary_conv2d: stride ",
              stride, " must be >= 1 and padding ", padding, " >= 0");
  const int64_t n = x.size(0), h = x.size(1), w = x.size(2);
  TORCH_CHECK(h + 2 * padding >= k && w + 2 * padding >= k,
              "binary_conv2d: input ", h, "x", w, " smaller than kernel ", k);
  const int64_t oh = (h + 2 * padding - k) / stride + 1;
  const int64_t ow = (w + 2 * padding - k) / stride + 1;
  TORCH_CHECK(!pool_output || (oh % 2 == 0 && ow % 2 == 0),
              "binary_conv2d: a pooled output needs an even size, got ", oh,
              "x", ow);
  const int64_t f = pool_output ? 2 : 1;
  Tensor result = float_output(out, x, n, out_channels, oh / f, ow / f);

  Tensor res_c;
  int64_t res_channels = 0, res_h = 0, res_w = 0;
  if (given(residual)) {
    res_c = residual->contiguous(at::MemoryFormat::ChannelsLast);
    TORCH_CHECK(res_c.device().is_cpu() &&
                    res_c.scalar_type() == at::kFloat && res_c.dim() == 4 &&
                    res_c.size(0) == n && res_c.size(1) > 0,
                "binary_conv2d: residual must be a float32 CPU tensor (", n,
                ", C, H, W), got ", res_c.scalar_type(), " ", res_c.sizes());
    res_channels = res_c.size(1);
    res_h = res_c.size(2);
    res_w = res_c.size(3);
    const int64_t f = pool_residual ? 2 : 1;
    TORCH_CHECK(res_h / f == oh && res_w / f == ow,
                "binary_conv2d: residual ", res_h, "x", res_w,
                pool_residual ? " pooled 2x2" : "",
                " is not the output size ", oh, "x", ow);
    at::assert_no_overlap(result, res_c);
  } else {
    TORCH_CHECK(!pool_residual,
                "binary_conv2d: pool_residual without a residual");
  }
  const float* a_in =
      channel_vector(act_bias_in, out_channels, "binary_conv2d: act_bias_in");
  const float* a_w =
      channel_vector(act_weight, out_channels, "binary_conv2d: act_weight");
  const float* a_out = channel_vector(act_bias_out, out_channels,
                                      "binary_conv2d: act_bias_out");
  TORCH_CHECK((a_in && a_w && a_out) || (!a_in && !a_w && !a_out),
              "binary_conv2d: give all of act_bias_in, act_weight, "
              "act_bias_out or none");

  // Packing of the output for the next layer: in the epilogue where whole
  // bytes of 8 channels line up with the weight blocks, else a pass after.
  Tensor packed;
  const float* p_bias = nullptr;
  int64_t pack_g = 0, pack_words = 0;
  bool fused_pack = false;
  if (pack_groups > 0) {
    TORCH_CHECK(out_channels % pack_groups == 0, "binary_conv2d: ",
                out_channels, " output channels not divisible by ",
                "pack_groups ", pack_groups);
    pack_g = out_channels / pack_groups;
    pack_words = words_for(pack_g);
    p_bias =
        channel_vector(pack_bias, out_channels, "binary_conv2d: pack_bias");
    fused_pack = out_g % kLanes == 0 && pack_g % kLanes == 0;
    packed = packed_output(packed_out, n, oh, ow, pack_groups * pack_words,
                           "binary_conv2d: packed_out");
  } else {
    TORCH_CHECK(!given(packed_out) && !given(pack_bias),
                "binary_conv2d: packed_out and pack_bias need pack_groups "
                ">= 1");
  }
  ConvPlan plan;
  plan.gemm = k == 1 && stride == 1 && padding == 0 && !pool_residual;
  plan.out = result;
  plan.packed = packed;
  plan.residual = res_c;
  plan.args = ConvArgs{
      u64(x),
      u64(weight),
      result.data_ptr<float>(),
      n, h, w,
      groups, words, in_g,
      out_channels, out_g, weight.size(1),
      k, stride, padding,
      oh, ow, 0,
      channel_vector(scale, out_channels, "binary_conv2d: scale"),
      channel_vector(bias, out_channels, "binary_conv2d: bias"),
      res_c.defined() ? res_c.data_ptr<float>() : nullptr,
      res_channels, pool_residual, res_h, res_w,
      a_in, a_w, a_out,
      fused_pack ? reinterpret_cast<uint8_t*>(packed.data_ptr()) : nullptr,
      fused_pack ? p_bias : nullptr,
      pack_g, pack_words, pack_groups * pack_words * 8};
  plan.args.pool_out = pool_output;
  plan.pack_after = packed.defined() && !fused_pack;
  // The epilogue writes whole bytes of channels: the bytes past a group's
  // channels must be 0 beforehand.
  plan.zero_packed = fused_pack && pack_g % 64 != 0;
  if (plan.pack_after)
    plan.pack = PackArgs{result.data_ptr<float>(), p_bias,
                         reinterpret_cast<uint64_t*>(packed.data_ptr()),
                         out_channels, pack_groups, pack_g, pack_words};
  return plan;
}

void run_plan(const Kernels& kern, const ConvPlan& plan) {
  if (plan.zero_packed) plan.packed.zero_();
  run_conv(kern, plan.args, plan.gemm);
  if (plan.pack_after)
    pack_pixels_parallel(kern, plan.pack,
                         plan.args.batch * plan.args.out_h * plan.args.out_w);
}

std::tuple<Tensor, Tensor> binary_conv2d(
    const Tensor& x, const Tensor& weight, int64_t in_channels,
    int64_t out_channels, int64_t stride, int64_t padding,
    const OptTensor& scale, const OptTensor& bias, const OptTensor& residual,
    const OptTensor& act_bias_in, const OptTensor& act_weight,
    const OptTensor& act_bias_out, bool pool_residual, int64_t pack_groups,
    const OptTensor& pack_bias, const OptTensor& out,
    const OptTensor& packed_out) {
  const ConvPlan plan =
      plan_conv(x, weight, in_channels, out_channels, stride, padding, scale,
                bias, residual, act_bias_in, act_weight, act_bias_out,
                pool_residual, pack_groups, pack_bias, out, packed_out);
  run_plan(active_kernels(), plan);
  return {plan.out, plan.packed};
}

}  // namespace nasbnn
