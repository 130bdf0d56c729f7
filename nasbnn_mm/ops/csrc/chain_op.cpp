// BlockChain of nasbnn_mm._ext: the binary blocks of a packed NAS-BNN run
// one after the other in one call, on arguments converted once (the
// per-block Python and argument conversion of a binary_block call each,
// measured at 5-14 us per block, are paid when the chain is built).
#include "ops.h"

namespace nasbnn {

BlockChain::BlockChain(std::vector<BlockArgs> blocks)
    : blocks_(std::move(blocks)) {}

std::vector<Tensor> BlockChain::run(const Tensor& x_packed, const Tensor& x,
                                    const std::vector<int64_t>& keep) const {
  const int64_t n = static_cast<int64_t>(blocks_.size());
  for (size_t i = 0; i < keep.size(); ++i)
    TORCH_CHECK(keep[i] >= 0 && keep[i] < n &&
                    (i == 0 || keep[i] > keep[i - 1]),
                "BlockChain.run: keep must be increasing block indices in "
                "[0, ", n, "), got ", keep[i], " at position ", i);
  std::vector<Tensor> outs;
  outs.reserve(keep.size());
  Tensor out = x, packed = x_packed;
  size_t next = 0;
  for (int64_t i = 0; i < n; ++i) {
    const BlockArgs& b = blocks_[i];
    TORCH_CHECK(packed.defined(), "BlockChain.run: block ", i - 1,
                " packs no signs (pack_groups 0) but block ", i, " follows");
    std::tie(out, packed) = binary_block(
        packed, out, b.weight1, b.stride1, b.padding1, b.scale1, b.bias1,
        b.act1_bias_in, b.act1_weight, b.act1_bias_out, b.pool_residual,
        b.sign2_bias, b.weight2, b.out_channels, b.scale2, b.bias2,
        b.act2_bias_in, b.act2_weight, b.act2_bias_out, b.pack_groups,
        b.pack_bias, c10::nullopt, c10::nullopt);
    if (next < keep.size() && keep[next] == i) outs.push_back(out), ++next;
  }
  return outs;
}

}  // namespace nasbnn
