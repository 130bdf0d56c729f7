// PackedLogits of nasbnn_mm._ext: see ops.h. The per-forward Python of
// three extension calls (the stem, the block chain, the head) and of their
// cache checks costs A ~0.2 ms in the benchmark's round-robin, where the
// interpreter's code and data are out of the caches.
#include "ops.h"

namespace nasbnn {

PackedLogits::PackedLogits(StemCall stem, std::vector<BlockArgs> blocks,
                           Tensor head_weight_blocks, Tensor head_bias,
                           std::vector<Tensor> watched)
    : stem_(stem_weights(stem)),
      chain_(std::move(blocks)),
      keep_{chain_.size() - 1},
      head_weight_blocks_(std::move(head_weight_blocks)),
      head_bias_(std::move(head_bias)),
      watch_(std::move(watched)) {
  TORCH_CHECK(chain_.size() > 0, "PackedLogits: no blocks");
}

c10::optional<Tensor> PackedLogits::run(const Tensor& x) const {
  if (watch_.changed()) return c10::nullopt;
  const auto [y, packed] = run_stem(stem_, x);
  const Tensor feat = chain_.run(packed, y, keep_)[0];
  return classifier_head(feat, head_weight_blocks_, head_bias_);
}

}  // namespace nasbnn
