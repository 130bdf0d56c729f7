// binary_block of nasbnn_mm._ext: a whole binary separable block of
// NAS-BNN, k x k conv (+ shortcut, RPReLU) then 1x1 conv (+ shortcut,
// RPReLU), in one call. Where the threads have enough output rows, the
// intermediate map never leaves a per-thread row buffer: each row of the
// k x k conv is written there with its packed signs, and the 1x1 conv
// reads it right away (it needs that row only).
#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>

#include <vector>

#include "ops.h"

namespace nasbnn {

std::tuple<Tensor, Tensor> binary_block(
    const Tensor& x, const Tensor& residual, const Tensor& weight1,
    int64_t stride1, int64_t padding1, const OptTensor& scale1,
    const OptTensor& bias1, const OptTensor& act1_bias_in,
    const OptTensor& act1_weight, const OptTensor& act1_bias_out,
    bool pool_residual, const OptTensor& sign2_bias, const Tensor& weight2,
    int64_t out_channels, const OptTensor& scale2, const OptTensor& bias2,
    const OptTensor& act2_bias_in, const OptTensor& act2_weight,
    const OptTensor& act2_bias_out, int64_t pack_groups,
    const OptTensor& pack_bias, const OptTensor& out,
    const OptTensor& packed_out, bool pool_output) {
  const BlockArgs b{weight1,       stride1,      padding1,     scale1,
                    bias1,         act1_bias_in, act1_weight,  act1_bias_out,
                    pool_residual, sign2_bias,   weight2,      out_channels,
                    scale2,        bias2,        act2_bias_in, act2_weight,
                    act2_bias_out, pack_groups,  pack_bias};
  bool pooled = false;
  auto result =
      run_block(x, residual, b, out, packed_out, false, pool_output, &pooled);
  TORCH_CHECK(pooled || !pool_output,
              "binary_block: pool_output needs an even output size, no out, "
              "the first conv's signs packed in its epilogue (channels per "
              "group a multiple of 8), the second's too, and on several "
              "threads as many rows per thread");
  return result;
}

std::tuple<Tensor, Tensor> run_block(const Tensor& x, const Tensor& residual,
                                     const BlockArgs& b, const OptTensor& out,
                                     const OptTensor& packed_out,
                                     bool residual_pooled, bool pool_output,
                                     bool* pooled) {
  TORCH_CHECK(residual.dim() == 4,
              "binary_block: the block input must be (N, C, H, W), got ",
              residual.sizes());
  TORCH_CHECK(b.weight2.dim() == 6 && b.weight2.size(0) == 1 &&
                  b.weight2.size(2) == 1,
              "binary_block: the second conv must be 1x1 with groups 1, ",
              "got a blocked weight of shape ", b.weight2.sizes());
  const int64_t channels = residual.size(1);
  ConvPlan plan1 = plan_conv(
      x, b.weight1, channels, channels, b.stride1, b.padding1, b.scale1,
      b.bias1, residual, b.act1_bias_in, b.act1_weight, b.act1_bias_out,
      b.pool_residual && !residual_pooled, 1, b.sign2_bias, c10::nullopt,
      c10::nullopt);
  const int64_t rows = plan1.args.batch * plan1.args.out_h;
  const int64_t ow = plan1.args.out_w;
  const int64_t threads = at::get_num_threads();
  // Row buffers need the k x k conv's signs packed in its epilogue, and
  // rows that keep every thread equally busy without splitting the weight
  // blocks: many rows, or as many per thread (14 rows on 2 threads).
  const bool row_buffers =
      !plan1.pack_after &&
      !(threads > 1 && rows < 8 * threads && rows % threads != 0);
  // A pooled output: the rows in pairs, the signs packed in the epilogue.
  bool pool = pool_output && row_buffers && !given(out) &&
              plan1.args.out_h % 2 == 0 && ow % 2 == 0;
  ConvPlan plan2 = plan_conv(
      plan1.packed, b.weight2, channels, b.out_channels, 1, 0, b.scale2,
      b.bias2, plan1.out, b.act2_bias_in, b.act2_weight, b.act2_bias_out,
      false, b.pack_groups, b.pack_bias, out, packed_out, pool);
  if (pool && plan2.pack_after) {
    pool = false;
    plan2 = plan_conv(plan1.packed, b.weight2, channels, b.out_channels, 1,
                      0, b.scale2, b.bias2, plan1.out, b.act2_bias_in,
                      b.act2_weight, b.act2_bias_out, false, b.pack_groups,
                      b.pack_bias, out, packed_out);
  }
  if (pooled) *pooled = pool;
  // The compacted weight fits where its chunks hold a group's channels in
  // the blocks weight1 has (compact_weight made it from weight1).
  if (b.weight1_compact.defined() &&
      b.compact_bits >= plan1.args.in_channels_g &&
      b.weight1_compact.size(1) == plan1.args.out_blocks) {
    plan1.args.w_compact = u64(b.weight1_compact);
    plan1.args.compact_bits = b.compact_bits;
    plan1.args.compact_words = b.weight1_compact.size(2);
  }
  at::assert_no_overlap(plan2.out, residual);
  const Kernels& kern = active_kernels();
  const ConvArgs& a1 = plan1.args;
  const ConvArgs& a2 = plan2.args;
  if (!row_buffers) {
    run_plan(kern, plan1);
    run_plan(kern, plan2);
    return {plan2.out, plan2.packed};
  }
  if (plan2.zero_packed) plan2.packed.zero_();
  const int64_t blocks1 = a1.groups * a1.out_blocks;
  const int64_t blocks2 = a2.groups * a2.out_blocks;
  const int64_t row_words = ow * a2.groups * a2.words;
  // Pooled: a thread takes whole pairs of rows (units of 2 rows).
  const int64_t unit = pool ? 2 : 1;
  at::parallel_for(0, rows / unit, 1, [&](int64_t begin, int64_t end) {
    begin *= unit;
    end *= unit;
    std::vector<float> out1(ow * a1.out_channels);
    // Zero once: the padding bits past the channels are never written.
    std::vector<uint64_t> packed1(row_words, 0);
    ConvArgs r1 = a1, r2 = a2;
    r1.out = out1.data();
    r1.packed_out = reinterpret_cast<uint8_t*>(packed1.data());
    r2.x = packed1.data();
    r2.residual = out1.data();
    for (int64_t r = begin; r < end; ++r) {
      r1.out_row0 = r;
      kern.conv_rows(r1, r, r + 1, 0, blocks1);
      r2.out = a2.out + r / unit * (ow / unit) * a2.out_channels;
      r2.pool_row_odd = r % 2 == 1;
      if (a2.packed_out)
        r2.packed_out = a2.packed_out + r * ow * a2.pack_pixel_bytes;
      kern.gemm_rows(r2, 0, ow, 0, blocks2);
      if (plan2.pack_after) kern.pack_pixels(plan2.pack, r * ow, (r + 1) * ow);
    }
  });
  return {plan2.out, plan2.packed};
}

}  // namespace nasbnn
