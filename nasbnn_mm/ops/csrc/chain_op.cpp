// BlockChain of nasbnn_mm._ext: the binary blocks of a packed NAS-BNN run
// one after the other in one call, on arguments converted once (the
// per-block Python and argument conversion of a binary_block call each,
// measured at 5-14 us per block, are paid when the chain is built).
#include "ops.h"

namespace nasbnn {

std::pair<Tensor, int64_t> compact_weight(const Tensor& blocked) {
  if (blocked.dim() != 6 || blocked.scalar_type() != at::kUInt64 ||
      !blocked.is_contiguous() || !blocked.device().is_cpu() ||
      blocked.size(2) != blocked.size(3) || blocked.size(5) != kLanes)
    return {Tensor(), 0};  // binary_block reports the bad weight
  const int64_t blocks = blocked.size(0) * blocked.size(1);
  const int64_t bits = blocked.size(1) * kLanes;
  const int64_t taps = blocked.size(2) * blocked.size(3);
  const int64_t words = compact_taps_words(bits, blocked.size(4),
                                           blocked.size(2));
  if (words == 0) return {Tensor(), 0};
  Tensor out = at::zeros({blocked.size(0), blocked.size(1), words, kLanes},
                         blocked.options());
  const uint64_t* src = u64(blocked);
  uint64_t* dst = reinterpret_cast<uint64_t*>(out.data_ptr());
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t l = 0; l < kLanes; ++l)
        put_bits(dst + b * words * kLanes + l, kLanes, t * bits, bits,
                 src[(b * taps + t) * kLanes + l] & mask);
  return {out, bits};
}

BlockChain::BlockChain(std::vector<BlockArgs> blocks, bool compact_taps)
    : blocks_(std::move(blocks)) {
  if (!compact_taps) return;
  for (BlockArgs& b : blocks_)
    std::tie(b.weight1_compact, b.compact_bits) = compact_weight(b.weight1);
}

std::vector<bool> BlockChain::compacted() const {
  std::vector<bool> flags;
  for (const BlockArgs& b : blocks_)
    flags.push_back(b.weight1_compact.defined());
  return flags;
}

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
  // A block whose output only feeds a stride-2 block's pooled shortcut
  // writes that pool, 4x smaller, instead (the maps of the first stages
  // do not fit the L2 cache; reading them back cost A ~5 %).
  bool pooled = false;
  for (int64_t i = 0; i < n; ++i) {
    const BlockArgs& b = blocks_[i];
    TORCH_CHECK(packed.defined(), "BlockChain.run: block ", i - 1,
                " packs no signs (pack_groups 0) but block ", i, " follows");
    const bool kept = next < keep.size() && keep[next] == i;
    const bool pool_output =
        !kept && i + 1 < n && blocks_[i + 1].pool_residual;
    std::tie(out, packed) = run_block(packed, out, b, c10::nullopt,
                                      c10::nullopt, pooled, pool_output,
                                      &pooled);
    if (kept) outs.push_back(out), ++next;
  }
  return outs;
}

}  // namespace nasbnn
