// Torch-side helpers shared by the binding files of nasbnn_mm._ext.
#pragma once

#include <torch/extension.h>

#include <tuple>
#include <vector>

#include "dispatch.h"

namespace nasbnn {

using at::Tensor;
using OptTensor = c10::optional<Tensor>;

inline int64_t words_for(int64_t bits) { return (bits + 63) / 64; }

inline const uint64_t* u64(const Tensor& t) {
  return reinterpret_cast<const uint64_t*>(t.data_ptr());
}

inline bool given(const OptTensor& t) { return t.has_value() && t->defined(); }

// Raises unless t is a contiguous CPU uint64 tensor.
void check_packed(const Tensor& t, const char* name);

// The data of an optional per-channel float32 vector, or null.
const float* channel_vector(const OptTensor& t, int64_t channels,
                            const char* name);

// Packs pixels [0, pixels) of args on torch's threads.
void pack_pixels_parallel(const Kernels& kern, const PackArgs& args,
                          int64_t pixels);

// A packed activation tensor (N, H, W, words_per_pixel), or the checked
// given one.
Tensor packed_output(const OptTensor& given_out, int64_t n, int64_t h,
                     int64_t w, int64_t words_per_pixel, const char* name);

// A checked binary convolution: its kernel arguments, its outputs and how
// its packed output is made (in the epilogue, or a pass after).
struct ConvPlan {
  ConvArgs args;
  Tensor out, packed, residual;  // residual: the contiguous one args reads
  bool gemm;                     // the 1x1 GEMM path
  bool pack_after;               // packing not fused: run `pack` after
  bool zero_packed;              // zero `packed` before the epilogue
  PackArgs pack;
};

// Checks the arguments of binary_conv2d and allocates its outputs; with
// pool_output, out is the 2x2 average pool of the output (ConvArgs::
// pool_out: only for calls of one output row each, both rows of a pair
// in order).
ConvPlan plan_conv(const Tensor& x, const Tensor& weight, int64_t in_channels,
                   int64_t out_channels, int64_t stride, int64_t padding,
                   const OptTensor& scale, const OptTensor& bias,
                   const OptTensor& residual, const OptTensor& act_bias_in,
                   const OptTensor& act_weight,
                   const OptTensor& act_bias_out, bool pool_residual,
                   int64_t pack_groups, const OptTensor& pack_bias,
                   const OptTensor& out, const OptTensor& packed_out,
                   bool pool_output = false);

// Runs a plan on torch's threads (binary_block runs its row-buffer mode
// without it, on outputs it never zeroes or writes).
void run_plan(const Kernels& kern, const ConvPlan& plan);

// The work split of a convolution over torch's threads (see conv_op.cpp).
void run_conv(const Kernels& kern, const ConvArgs& args, bool gemm);

std::tuple<Tensor, Tensor> binary_conv2d(
    const Tensor& x, const Tensor& weight, int64_t in_channels,
    int64_t out_channels, int64_t stride, int64_t padding,
    const OptTensor& scale, const OptTensor& bias, const OptTensor& residual,
    const OptTensor& act_bias_in, const OptTensor& act_weight,
    const OptTensor& act_bias_out, bool pool_residual, int64_t pack_groups,
    const OptTensor& pack_bias, const OptTensor& out,
    const OptTensor& packed_out);

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
    const OptTensor& packed_out, bool pool_output);

// The arguments of binary_block after (x, residual), without out and
// packed_out.
struct BlockArgs {
  Tensor weight1;
  int64_t stride1, padding1;
  OptTensor scale1, bias1, act1_bias_in, act1_weight, act1_bias_out;
  bool pool_residual;
  OptTensor sign2_bias;
  Tensor weight2;
  int64_t out_channels;
  OptTensor scale2, bias2, act2_bias_in, act2_weight, act2_bias_out;
  int64_t pack_groups;
  OptTensor pack_bias;
  // weight1's taps compacted in chunks of compact_bits bits
  // (compact_weight); undefined: not compacted.
  Tensor weight1_compact;
  int64_t compact_bits = 0;
};

// binary_block on BlockArgs (with weight1_compact where given). With
// residual_pooled, residual is already the 2x2 average pool that
// b.pool_residual asks for. pool_output asks for the output's 2x2 average
// pool instead of the output (for a stride-2 block next; the packed signs
// stay whole); `pooled` (if given) tells whether it was done: only where
// the block runs in row buffers on an even size.
std::tuple<Tensor, Tensor> run_block(const Tensor& x, const Tensor& residual,
                                     const BlockArgs& b, const OptTensor& out,
                                     const OptTensor& packed_out,
                                     bool residual_pooled = false,
                                     bool pool_output = false,
                                     bool* pooled = nullptr);

// The blocked weight (G, OCB, K, K, Wg, 8) of a k x k convolution with as
// many input as output channels, its taps compacted in chunks of OCB * 8
// bits (compact_taps.inc): (G, OCB, compact_taps_words, 8) and the chunk
// bits; (undefined, 0) where compact_taps_words is 0.
std::pair<Tensor, int64_t> compact_weight(const Tensor& blocked);

// Consecutive binary blocks (each block's pack_groups and pack_bias those
// of the next one's first convolution).
class BlockChain {
 public:
  // compact_taps: compact the k x k weights' taps where they can be.
  explicit BlockChain(std::vector<BlockArgs> blocks, bool compact_taps = true);
  // Runs every block on (x_packed, x); returns the outputs of the blocks
  // in `keep` (increasing indices).
  std::vector<Tensor> run(const Tensor& x_packed, const Tensor& x,
                          const std::vector<int64_t>& keep) const;
  int64_t size() const { return static_cast<int64_t>(blocks_.size()); }
  // Per block: whether its k x k weight's taps are compacted.
  std::vector<bool> compacted() const;

 private:
  std::vector<BlockArgs> blocks_;
};

// The arguments of quantized_stem after x.
struct StemCall {
  bool quantize_input;
  double step;
  int64_t q_min, q_max;
  Tensor weight_codes;
  int64_t stride, padding;
  Tensor scale, shift, act_bias_in, act_weight, act_bias_out;
  int64_t pack_groups;
  OptTensor pack_bias;
};

// quantized_stem's weight side, checked and laid out once (stem_weights):
// the weight codes as (C_in, K, K, out_padded) float32, the per-channel
// vectors in out_padded floats (0 past C_out), and for the 8-bit path
// (u8: exact integer sums, codes in [-128, 127], C_in <= 4) the codes as
// (K, K, out_padded, 4) bytes and 128 x each channel's code sum.
struct StemWeights {
  StemCall call;
  bool exact;
  int64_t cin, cout, k, out_padded;
  Tensor w_t;
  std::vector<float> scale, shift, act_bias_in, act_weight, act_bias_out,
      pack_bias;
  std::vector<int8_t> w_s8;
  std::vector<int32_t> w_offset;
  bool u8 = false;
};
StemWeights stem_weights(const StemCall& call);
// The stem of images x (N, C_in, H, W): as quantized_stem.
std::tuple<Tensor, Tensor> run_stem(const StemWeights& stem, const Tensor& x);

// Whether tensors changed since the watch was made: another storage
// (data pointer) or an in-place write (version counter). One call checks
// them all, so a forward that caches what it derived from them pays
// microseconds, not a Python loop over them.
class TensorWatch {
 public:
  explicit TensorWatch(std::vector<Tensor> tensors);
  bool changed() const;
  int64_t size() const { return static_cast<int64_t>(tensors_.size()); }

 private:
  std::vector<Tensor> tensors_;
  std::vector<const void*> data_;
  std::vector<int64_t> versions_;
};

// A packed NAS-BNN's classifier logits in one call: the stem, every block
// (BlockChain) and the classifier head, on arguments converted once. The
// tensors they were derived from are watched: run returns nothing once
// one of them changed (the caller derives the arguments again).
class PackedLogits {
 public:
  PackedLogits(StemCall stem, std::vector<BlockArgs> blocks,
               Tensor head_weight_blocks, Tensor head_bias,
               std::vector<Tensor> watched);
  c10::optional<Tensor> run(const Tensor& x) const;

 private:
  StemWeights stem_;
  BlockChain chain_;
  std::vector<int64_t> keep_;
  Tensor head_weight_blocks_, head_bias_;
  TensorWatch watch_;
};

std::tuple<Tensor, Tensor> rprelu_pack(const Tensor& x,
                                       const Tensor& act_bias_in,
                                       const Tensor& act_weight,
                                       const Tensor& act_bias_out,
                                       int64_t pack_groups,
                                       const OptTensor& pack_bias);

// Channel-wise weight normalization (+ alpha * sign) of a (C, n) weight
// with contiguous rows: {out, mean, norm, alpha}, norm the scale
// 1 / sqrt(var + eps) or ('official') the unbiased std, alpha 1 unless
// binary. The backward takes those statistics; see weight_norm_op.cpp.
std::vector<Tensor> weight_norm_forward(const Tensor& weight, bool official,
                                        double eps, bool binary);
Tensor weight_norm_backward(const Tensor& grad, const Tensor& weight,
                            const Tensor& mean, const Tensor& norm,
                            const Tensor& alpha, bool official, bool binary);

// y[o, i, :] = weight[o, i, :] @ map for a (O, I, K) float32 view with
// contiguous rows and a (K, J) map (K, J <= 64): the kernel and
// Bi-Transformations of a sliced weight; the backward returns {grad
// weight (O, I, K), grad map (K, J)}, each undefined unless asked for.
// See kernel_map_op.cpp.
Tensor kernel_map_forward(const Tensor& weight, const Tensor& map);
std::vector<Tensor> kernel_map_backward(const Tensor& grad,
                                        const Tensor& weight,
                                        const Tensor& map, bool need_weight,
                                        bool need_map);

// The weight gradient (O, C / groups, k, k) of a square-kernel convolution
// of a +-1 input x (N, C, H, W) for the output gradient grad (N, O, H', W'),
// by table lookup; undefined when x is not +-1 everywhere. avx512 kernel
// path only. See sign_grad_op.cpp.
Tensor sign_conv_weight_grad(const Tensor& grad, const Tensor& x,
                             int64_t kernel_size, int64_t stride,
                             int64_t padding, int64_t groups);

// F.conv2d(x, weight, stride, padding, groups) (N, O, H', W') of a +-1
// input x (N, C, H, W) and a float weight (O, C / groups, k, k), by table
// lookup; undefined when x is not +-1 everywhere. avx512 kernel path only.
// See sign_conv_op.cpp.
Tensor sign_input_conv2d(const Tensor& x, const Tensor& weight,
                         int64_t stride, int64_t padding, int64_t groups);

// The input gradient (N, C, height, width) of a square-kernel convolution
// whose weight (O, C / groups, k, k) is alpha_o * sign per output channel,
// for the output gradient grad (N, O, H', W'), by table lookup; undefined
// when a weight row is not +-alpha_o (alpha_o > 0). avx512 kernel path
// only. See sign_dgrad_op.cpp.
Tensor sign_conv_input_grad(const Tensor& grad, const Tensor& weight,
                            int64_t height, int64_t width, int64_t stride,
                            int64_t padding, int64_t groups);

// RSign (sign(x + b), ApproxSign gradient) and RPReLU of training on
// contiguous (N, C, H, W) float32 maps; the backward also returns the
// per-channel parameter gradients. See activation_op.cpp.
Tensor rsign_forward(const Tensor& x, const Tensor& bias);
std::tuple<Tensor, Tensor> rsign_backward(const Tensor& grad, const Tensor& x,
                                          const Tensor& bias);
Tensor rprelu_forward(const Tensor& x, const Tensor& bias_in,
                      const Tensor& weight, const Tensor& bias_out);
std::vector<Tensor> rprelu_backward(const Tensor& grad, const Tensor& x,
                                    const Tensor& bias_in,
                                    const Tensor& weight);
// RPReLU(y + r) and RSign of its output in one pass each way (a block's
// first half); the backward also sums the four parameters' gradients.
std::vector<Tensor> rprelu_rsign_forward(const Tensor& y, const Tensor& r,
                                         const Tensor& bias_in,
                                         const Tensor& weight,
                                         const Tensor& bias_out,
                                         const Tensor& sign_bias);
std::vector<Tensor> rprelu_rsign_backward(
    const Tensor& grad_out, const Tensor& grad_sign, const Tensor& y,
    const Tensor& r, const Tensor& bias_in, const Tensor& weight,
    const Tensor& bias_out, const Tensor& sign_bias);

// The 2 x 2 average pooling (stride 2) of a contiguous (N, C, H, W)
// float32 map of even H and W, and its input gradient (N, C, height,
// width). See pool_op.cpp.
Tensor avg_pool2x2_forward(const Tensor& x);
Tensor avg_pool2x2_backward(const Tensor& grad, int64_t height,
                            int64_t width);

// Training-mode batch normalization of a contiguous (N, C, H, W) float32
// map: {y, mean, invstd} (C, ), the running statistics (optional, both or
// neither) updated in place; the backward gives {x, weight, bias}
// gradients. See batch_norm_op.cpp.
std::vector<Tensor> batch_norm_forward(const Tensor& x, const Tensor& weight,
                                       const Tensor& bias,
                                       const OptTensor& running_mean,
                                       const OptTensor& running_var,
                                       double momentum, double eps);
std::vector<Tensor> batch_norm_backward(const Tensor& grad, const Tensor& x,
                                        const Tensor& weight,
                                        const Tensor& mean,
                                        const Tensor& invstd);

// Signs of a contiguous (N, C, H, W) float32 tensor packed along C per
// group ((N, H, W, G * Wg) uint64, as pack_activation), |x[n, 0, 0, 0]|
// per n, and whether every value of each n has that magnitude. See
// sign_pack_op.cpp.
std::tuple<Tensor, Tensor, bool> pack_signs(const Tensor& x, int64_t groups);

// The 8-bit stem: codes round(clamp(x / step, q_min, q_max)) (or x itself
// without quantize_input), their convolution with the integer
// weight_codes (C_out, C_in, K, K), exact in float32 for codes, then
// acc * scale + shift and RPReLU; (N, C_out, OH, OW) float32 in
// channels_last memory and the packed signs of (out + pack_bias).
std::tuple<Tensor, Tensor> quantized_stem(
    const Tensor& x, bool quantize_input, double step, int64_t q_min,
    int64_t q_max,
    const Tensor& weight_codes, int64_t stride, int64_t padding,
    const Tensor& scale, const Tensor& shift, const Tensor& act_bias_in,
    const Tensor& act_weight, const Tensor& act_bias_out,
    int64_t pack_groups, const OptTensor& pack_bias);

// The classifier head: global average pooling of feat (N, C, H, W) (read
// in channels_last memory), then the fully connected layer of weight_blocks
// (ceil(O / 16), C, 16) and bias (O); (N, O) in the fixed summation order
// of classifier_head_ref.
Tensor classifier_head(const Tensor& feat, const Tensor& weight_blocks,
                       const Tensor& bias);

// Average RoIAlign of a (N, C, H, W) float32 map (read in channels_last
// memory) over (K, 5) RoIs (batch index, x1, y1, x2, y2): (K, C, PH, PW)
// contiguous, equal to MMCV's and torchvision's CPU RoIAlign.
Tensor roi_align_nhwc(const Tensor& input, const Tensor& rois,
                      int64_t pooled_h, int64_t pooled_w,
                      double spatial_scale, int64_t sampling_ratio,
                      bool aligned);

}  // namespace nasbnn
