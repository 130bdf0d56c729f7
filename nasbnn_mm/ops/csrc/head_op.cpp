// classifier_head of nasbnn_mm._ext: global average pooling of a packed
// NAS-BNN's last stage and its fully connected layer in one call, in the
// fixed summation order of classifier_head_ref (see HeadArgs).
#include <ATen/Parallel.h>

#include "ops.h"

namespace nasbnn {

Tensor classifier_head(const Tensor& feat_in, const Tensor& weight_blocks,
                       const Tensor& bias) {
  TORCH_CHECK(feat_in.device().is_cpu() &&
                  feat_in.scalar_type() == at::kFloat && feat_in.dim() == 4,
              "classifier_head: feat must be a float32 CPU tensor (N, C, H, "
              "W), got ", feat_in.scalar_type(), " ", feat_in.sizes());
  const Tensor feat = feat_in.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = feat.size(0), c = feat.size(1);
  const int64_t pixels = feat.size(2) * feat.size(3);
  const Tensor& w = weight_blocks;
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kFloat &&
                  w.dim() == 3 && w.size(1) == c && w.size(2) == 16 &&
                  w.is_contiguous(),
              "classifier_head: weight_blocks must be contiguous float32 "
              "(ceil(O / 16), ", c, ", 16), got ", w.scalar_type(), " ",
              w.sizes());
  TORCH_CHECK(bias.device().is_cpu() && bias.scalar_type() == at::kFloat &&
                  bias.dim() == 1 && bias.is_contiguous() &&
                  (bias.size(0) + 15) / 16 == w.size(0),
              "classifier_head: bias must be a contiguous float32 (O, ) with "
              "ceil(O / 16) = ", w.size(0), ", got ", bias.sizes());
  TORCH_CHECK(pixels > 0, "classifier_head: feat has no pixels: ",
              feat.sizes());
  const int64_t outputs = bias.size(0);
  const Tensor pooled = at::empty({n, c}, feat.options());
  Tensor out = at::empty({n, outputs}, feat.options());
  const HeadArgs args{feat.data_ptr<float>(), n, pixels, c,
                      w.data_ptr<float>(), bias.data_ptr<float>(), outputs,
                      pooled.data_ptr<float>(), out.data_ptr<float>()};
  const Kernels& kern = active_kernels();
  at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
    kern.head_pool(args, b, e);
  });
  at::parallel_for(0, w.size(0), 8, [&](int64_t b, int64_t e) {
    kern.head_fc(args, b, e);
  });
  return out;
}

}  // namespace nasbnn
