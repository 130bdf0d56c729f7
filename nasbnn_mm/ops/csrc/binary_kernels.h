// Bit-packed binary convolution kernels of nasbnn_mm (no torch in here).
//
// Layouts (all words are uint64, bit i of a word = channel 64 * word + i of
// its group; bit 1 encodes +1, bit 0 encodes -1; the bits past the last
// channel of a group are 0 in both operands, so they never count):
//   activations  (N, H, W, G * Wg)        Wg = ceil(C_in / G / 64)
//   weights      (G, OCB, KH, KW, Wg, 8)  "blocked": 8 output channels of a
//                                         group side by side per word, the
//                                         missing channels of the last block
//                                         all-zero (OCB = ceil(C_out / G / 8))
//   output       (N, OH, OW, C_out) float
//
// For one output and a set of valid taps T the dot product of +-1 vectors is
//   dot = C_in_g * |T| - 2 * popcount(x XOR w)  summed over T,
// which equals F.conv2d(sign(x), sign(W), padding=p): taps that fall on the
// zero padding are left out of T (they add 0 in the float convolution,
// whereas a +-1 XNOR would add +-1 for them).
#pragma once

#include <cstdint>

// The tile, the epilogue and run_tile are always inlined into the pixel
// loops: left to the compiler, the epilogue was a call per tile whose
// setup and the counts' round trip through memory cost 10-17 % of a
// packed NAS-BNN forward (docs/benchmarks_packed.md).
#define NASBNN_INLINE __attribute__((always_inline)) static inline

namespace nasbnn {

// Output channels per weight block: one AVX-512 vector of uint64.
constexpr int kLanes = 8;
// Largest supported kernel is 7x7.
constexpr int kMaxKernel = 7;

// One kernel tap: offsets of its first word in the activations (relative to
// the output pixel's base) and in the weight block.
struct Tap {
  int64_t x, w;
};

struct ConvArgs {
  const uint64_t* x;  // packed activations
  const uint64_t* w;  // blocked packed weights
  float* out;         // (N, OH, OW, C_out)
  int64_t batch, height, width;
  int64_t groups, words, in_channels_g;
  int64_t out_channels, out_channels_g, out_blocks;
  int64_t kernel, stride, padding;
  int64_t out_h, out_w;
  // conv_rows writes output row r (of N * OH) at row r - out_row0 of out
  // and packed_out (a buffer of some rows); 0 for whole maps.
  int64_t out_row0;
  // Epilogue per output channel oc, each step only if its pointer is set:
  //   v = dot * scale[oc] + bias[oc] + res(pixel, oc % res_channels)
  //   v = v + act_bias_in[oc]; v = v > 0 ? v : v * act_weight[oc];
  //   v = v + act_bias_out[oc]                       (RPReLU)
  // res is residual (N, OH, OW, res_channels) at the output pixel, or, with
  // res_pool, the 2x2 average pool (stride 2) of residual (N, res_h,
  // res_w, res_channels) there, summed and divided as F.avg_pool2d does:
  // ((((0 + r00) + r01) + r10) + r11) / 4 (as * 0.25: the same real
  // number rounded once, so the same bits, without a division).
  const float* scale;
  const float* bias;
  const float* residual;
  int64_t res_channels;
  bool res_pool;
  int64_t res_h, res_w;
  const float* act_bias_in;
  const float* act_weight;
  const float* act_bias_out;
  // With packed_out, also the signs (v + pack_bias[oc]) >= 0 of the next
  // layer's input, packed as pack_activation packs them for pack_groups
  // groups: one byte per 8 channels, (N, OH, OW, pack_pixel_bytes) bytes.
  // Only when every weight block holds 8 whole channels that start a byte
  // (out_channels_g and pack_channels_g multiples of 8); the bytes past a
  // group's channels are zeroed beforehand.
  uint8_t* packed_out;
  const float* pack_bias;  // may be null
  int64_t pack_channels_g, pack_words, pack_pixel_bytes;
  // pool_out: out holds the 2x2 average pool (stride 2) of the output
  // instead, as residual's res_pool reads it: a call writes one output
  // row (out: its pooled row; pool_row_odd: the second of the pair) whose
  // pixel p adds into pooled pixel p / 2 in the order ((((0 + v00) + v01)
  // + v10) + v11) * 0.25 (pool_add).
  bool pool_out, pool_row_odd;
  // Optional: w with its taps compacted in chunks of compact_bits >=
  // in_channels_g bits, (G, OCB, compact_words, 8), for the output pixels
  // whose taps all lie inside the input (compact_taps.inc); null: w for
  // every pixel.
  const uint64_t* w_compact;
  int64_t compact_bits, compact_words;
};

// Words per pixel of a k x k convolution's taps compacted in chunks of
// chunk_bits bits, for groups whose channels fill `words` words
// (compact_taps.inc); 0 where they are not compacted: more than one word,
// chunks not a multiple of 8 or above 56 bits, kernels other than 3, 5.
inline int64_t compact_taps_words(int64_t chunk_bits, int64_t words,
                                  int64_t kernel) {
  if (words != 1 || chunk_bits % 8 != 0 || chunk_bits < 8 ||
      chunk_bits > 56 || (kernel != 3 && kernel != 5))
    return 0;
  return (chunk_bits * kernel * kernel + 63) / 64;
}

// ORs v (its low `bits` bits, the rest 0) into a stream of 64-bit words
// at bit `bit`, word i at words[i * stride]: how compact_row and
// compact_weight lay out the taps.
static inline void put_bits(uint64_t* words, int64_t stride, int64_t bit,
                            int64_t bits, uint64_t v) {
  const int64_t i = bit / 64, shift = bit % 64;
  words[i * stride] |= v << shift;
  if (shift + bits > 64) words[(i + 1) * stride] |= v >> (64 - shift);
}

// Where pool_out is set: the quarter q (0-3: row parity * 2 + column
// parity) of pooled value `sum` that value v adds in that order.
static inline float pool_add(int q, float sum, float v) {
  sum = (q == 0 ? 0.f : sum) + v;
  return q == 3 ? sum * 0.25f : sum;
}

// Constants of the epilogue for the weight blocks from output channel oc0
// (see epilogue_setup), computed once per row and blocks instead of per
// pixel tile.
struct EpilogueSetup {
  int64_t oc0;
  int lanes;         // channels of the first block (kLanes when whole)
  int64_t r0;        // residual channel of oc0; 0 without residual
  int64_t packed_lo;  // byte of oc0's signs in a pixel's packed bytes
  int64_t packed_hi;  // byte of oc0 + kLanes's (0 without packed_out)
};

struct PackArgs {
  const float* x;     // (pixels, channels)
  const float* bias;  // (channels) added before the sign, or null
  uint64_t* out;      // (pixels, groups * words)
  int64_t channels, groups, channels_g, words;
};

// The 8-bit stem (quantized_stem): the input quantized to integer codes
// and convolved with the weight's integer codes, both held in float32, so
// every product and partial sum is an integer below 2^24 and exact in any
// order; then the folded affine, RPReLU and the first block's packed signs.
struct StemArgs {
  const float* x;  // (N, C_in, H, W) input, contiguous
  float* codes;    // (N, C_in, H + 2p, W + 2p) its codes, zero border
  const float* w;  // (C_in, K, K, out_padded) weight codes, 0 past C_out
  float* out;      // (N, OH, OW, C_out)
  bool quantize_input;  // else the codes are the input itself
  // The sums are exact (integer codes, C_in * K * K * max|q|^2 <= 2^24):
  // taken with FMA; else in quantized_stem_ref's order, no FMA.
  bool exact_sums;
  float step, q_min, q_max;
  int64_t batch, in_channels, height, width, padding;
  int64_t out_channels, out_padded, kernel, stride, out_h, out_w;
  // (out_padded) each, 0 past C_out: v = acc * scale + shift, then RPReLU.
  const float *scale, *shift, *act_bias_in, *act_weight, *act_bias_out;
  PackArgs pack;  // packing of the output pixels
  // pack_fused: the epilogue ORs the signs of (v + pack_bias_padded) into
  // the zeroed pack.out (every 16 channels within one word: pack.groups
  // == 1 or pack.channels_g a multiple of 16); else pack_pixels per row.
  bool pack_fused;
  const float* pack_bias_padded;  // (out_padded), 0 past C_out
  // The 8-bit path (stem_rows_u8; codes in [-128, 127], C_in <= 4): the
  // codes + 128 as the bytes of one uint32 per pixel of (N, H + 2p,
  // W + 2p), 128 on the border (code 0); the weight codes (K, K,
  // out_padded, 4) int8, 0 past C_in and C_out; and 128 * each channel's
  // sum of weight codes (out_padded), which the sums of biased codes
  // exceed the true sums by.
  uint32_t* codes_u8;
  const int8_t* w_s8;
  const int32_t* w_offset;
};

// The classifier head of a packed NAS-BNN (classifier_head): global
// average pooling of the last stage, then the fully connected layer, each
// sum in one fixed order (head_driver.inc), so every path and thread count
// gives the same bits.
struct HeadArgs {
  const float* feat;  // (N, H * W, C) the last stage, channels_last
  int64_t batch, pixels, channels;
  // (ceil(O / 16), C, 16): output o's weights at [o / 16][k][o % 16], 0
  // past O; and the bias (O)
  const float* weight_blocks;
  const float* bias;
  int64_t outputs;
  float* pooled;  // (N, C)
  float* out;     // (N, O)
};

// One instruction set: convolution over output rows [begin, end) of
// N * OH, the 1x1/stride-1/no-padding case as a GEMM over output pixels
// [begin, end) of N * OH * OW, both for the weight blocks [block_begin,
// block_end) of G * OCB (the threads split rows, and blocks where rows are
// too few), and packing of pixels [begin, end).
struct Kernels {
  const char* name;
  void (*conv_rows)(const ConvArgs&, int64_t, int64_t, int64_t, int64_t);
  void (*gemm_rows)(const ConvArgs&, int64_t, int64_t, int64_t, int64_t);
  void (*pack_pixels)(const PackArgs&, int64_t, int64_t);
  // Stem: codes of input rows [begin, end) of N * C_in * H; output rows
  // [begin, end) of N * OH (and their packed signs).
  void (*stem_quantize)(const StemArgs&, int64_t, int64_t);
  void (*stem_rows)(const StemArgs&, int64_t, int64_t);
  // The 8-bit path (see StemArgs::codes_u8), null where the instruction
  // set has none: biased codes of input rows [begin, end) of N * H
  // (false if an input is NaN, whose code the path cannot hold), and
  // output rows [begin, end) of N * OH from them.
  bool (*stem_quantize_u8)(const StemArgs&, int64_t, int64_t);
  void (*stem_rows_u8)(const StemArgs&, int64_t, int64_t);
  // Head: pooled features of images [begin, end); logits of the 16-output
  // blocks [begin, end) of every image.
  void (*head_pool)(const HeadArgs&, int64_t, int64_t);
  void (*head_fc)(const HeadArgs&, int64_t, int64_t);
};

const Kernels& scalar_kernels();
// Null where the compiler or the architecture has no such path.
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();

}  // namespace nasbnn
