// Torch bindings of the bit-packed binary convolution (module
// nasbnn_mm._ext). Shapes and layouts: see binary_kernels.h.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <map>
#include <vector>

#include "ops.h"
#include "transpose.h"

namespace nasbnn {

void check_packed(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kUInt64 &&
                  t.is_contiguous(),
              name, ": expected a contiguous CPU uint64 tensor, got ",
              t.scalar_type(), " on ", t.device());
}

const float* channel_vector(const OptTensor& t, int64_t channels,
                            const char* name) {
  if (!given(t)) return nullptr;
  TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat &&
                  t->dim() == 1 && t->size(0) == channels &&
                  t->is_contiguous(),
              name, ": expected a contiguous float32 CPU vector of ",
              channels, " channels, got ", t->scalar_type(), " of shape ",
              t->sizes());
  return t->data_ptr<float>();
}

void pack_pixels_parallel(const Kernels& kern, const PackArgs& args,
                          int64_t pixels) {
  at::parallel_for(0, pixels, 256, [&](int64_t b, int64_t e) {
    kern.pack_pixels(args, b, e);
  });
}

Tensor packed_output(const OptTensor& given_out, int64_t n, int64_t h,
                     int64_t w, int64_t words_per_pixel, const char* name) {
  if (!given(given_out))
    return at::empty({n, h, w, words_per_pixel},
                     at::TensorOptions().dtype(at::kUInt64));
  check_packed(*given_out, name);
  TORCH_CHECK(given_out->sizes() ==
                  at::IntArrayRef({n, h, w, words_per_pixel}),
              name, ": expected shape (", n, ", ", h, ", ", w, ", ",
              words_per_pixel, "), got ", given_out->sizes());
  return *given_out;
}

namespace {

Tensor pack_activation(const Tensor& x, const OptTensor& bias,
                       int64_t groups) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                  x.dim() >= 1,
              "pack_activation: x must be a float32 CPU tensor (..., C), "
              "got ", x.scalar_type(), " of shape ", x.sizes());
  const Tensor xc = x.contiguous();
  const int64_t channels = xc.size(-1);
  TORCH_CHECK(groups >= 1 && channels > 0 && channels % groups == 0,
              "pack_activation: channels ", channels,
              " not divisible by groups ", groups);
  const int64_t channels_g = channels / groups;
  const int64_t words = words_for(channels_g);
  auto sizes = xc.sizes().vec();
  sizes.back() = groups * words;
  Tensor out = at::empty(sizes, xc.options().dtype(at::kUInt64));
  const PackArgs args{xc.data_ptr<float>(),
                      channel_vector(bias, channels, "pack_activation: bias"),
                      reinterpret_cast<uint64_t*>(out.data_ptr()), channels,
                      groups, channels_g, words};
  pack_pixels_parallel(active_kernels(), args, xc.numel() / channels);
  return out;
}

Tensor block_weight(const Tensor& packed, int64_t groups) {
  check_packed(packed, "block_weight: packed");
  TORCH_CHECK(packed.dim() == 4,
              "block_weight: expected (C_out, KH, KW, Wg), got ",
              packed.sizes());
  const int64_t oc = packed.size(0), kh = packed.size(1),
                kw = packed.size(2), words = packed.size(3);
  TORCH_CHECK(groups >= 1 && oc % groups == 0, "block_weight: C_out ", oc,
              " not divisible by groups ", groups);
  const int64_t oc_g = oc / groups, blocks = (oc_g + kLanes - 1) / kLanes;
  const int64_t taps = kh * kw * words;
  Tensor out = at::zeros({groups, blocks, kh, kw, words, kLanes},
                         packed.options());
  const uint64_t* src = u64(packed);
  uint64_t* dst = reinterpret_cast<uint64_t*>(out.data_ptr());
  for (int64_t o = 0; o < oc; ++o) {
    const int64_t g = o / oc_g, b = (o % oc_g) / kLanes,
                  l = (o % oc_g) % kLanes;
    uint64_t* d = dst + (g * blocks + b) * taps * kLanes + l;
    const uint64_t* s = src + o * taps;
    for (int64_t t = 0; t < taps; ++t) d[t * kLanes] = s[t];
  }
  return out;
}

// Distinct threads that at::parallel_for runs the kernels on now: torch's
// intra-op thread count, or 1 when the extension was compiled without
// OpenMP (at::parallel_for is a header template; without -fopenmp it
// runs serially).
int64_t kernel_threads() {
  const int64_t threads = at::get_num_threads();
  std::vector<char> used(threads, 0);
  at::parallel_for(0, threads, 1, [&](int64_t b, int64_t e) {
    used[at::get_thread_num()] = 1;
  });
  return std::count(used.begin(), used.end(), 1);
}

std::map<std::string, bool> cpu_features() {
  std::map<std::string, bool> f;
#if defined(__x86_64__) && defined(__GNUC__)
  f["popcnt"] = __builtin_cpu_supports("popcnt");
  f["avx2"] = __builtin_cpu_supports("avx2");
  f["avx512f"] = __builtin_cpu_supports("avx512f");
  f["avx512vpopcntdq"] = __builtin_cpu_supports("avx512vpopcntdq");
  f["avx512ifma"] = __builtin_cpu_supports("avx512ifma");
  f["avx512vnni"] = __builtin_cpu_supports("avx512vnni");
#endif
  return f;
}

// BlockArgs from the tuple of fused.binary_block_args (21 items, out and
// packed_out None).
BlockArgs block_args(const pybind11::tuple& t) {
  TORCH_CHECK(t.size() == 21 && t[19].is_none() && t[20].is_none(),
              "BlockChain: each block must be the tuple of "
              "binary_block_args without out / packed_out, got ", t.size(),
              " items");
  const auto opt = [&](int i) {
    return t[i].is_none() ? OptTensor() : OptTensor(t[i].cast<Tensor>());
  };
  return BlockArgs{t[0].cast<Tensor>(),  t[1].cast<int64_t>(),
                   t[2].cast<int64_t>(), opt(3),
                   opt(4),               opt(5),
                   opt(6),               opt(7),
                   t[8].cast<bool>(),    opt(9),
                   t[10].cast<Tensor>(), t[11].cast<int64_t>(),
                   opt(12),              opt(13),
                   opt(14),              opt(15),
                   opt(16),              t[17].cast<int64_t>(),
                   opt(18)};
}

// StemCall from the tuple of stem.quantized_stem_args (14 items).
StemCall stem_call(const pybind11::tuple& t) {
  TORCH_CHECK(t.size() == 14,
              "PackedLogits: the stem must be the tuple of "
              "quantized_stem_args, got ", t.size(), " items");
  return StemCall{t[0].cast<bool>(),    t[1].cast<double>(),
                  t[2].cast<int64_t>(), t[3].cast<int64_t>(),
                  t[4].cast<Tensor>(),  t[5].cast<int64_t>(),
                  t[6].cast<int64_t>(), t[7].cast<Tensor>(),
                  t[8].cast<Tensor>(),  t[9].cast<Tensor>(),
                  t[10].cast<Tensor>(), t[11].cast<Tensor>(),
                  t[12].cast<int64_t>(),
                  t[13].is_none() ? OptTensor()
                                  : OptTensor(t[13].cast<Tensor>())};
}

}  // namespace
}  // namespace nasbnn

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.doc() = "Bit-packed binary convolution kernels of nasbnn_mm";
  m.def("pack_activation", &nasbnn::pack_activation, py::arg("x"),
        py::arg("bias") = py::none(), py::arg("groups") = 1,
        "Sign bits of (x + bias) >= 0 packed along the last dim, per group.");
  m.def("block_weight", &nasbnn::block_weight, py::arg("packed"),
        py::arg("groups"),
        "(C_out, KH, KW, Wg) packed weight -> (G, OCB, KH, KW, Wg, 8).");
  m.def("binary_conv2d", &nasbnn::binary_conv2d, py::arg("x"),
        py::arg("weight"), py::arg("in_channels"), py::arg("out_channels"),
        py::arg("stride") = 1, py::arg("padding") = 0,
        py::arg("scale") = py::none(), py::arg("bias") = py::none(),
        py::arg("residual") = py::none(), py::arg("act_bias_in") = py::none(),
        py::arg("act_weight") = py::none(),
        py::arg("act_bias_out") = py::none(),
        py::arg("pool_residual") = false, py::arg("pack_groups") = 0,
        py::arg("pack_bias") = py::none(), py::arg("out") = py::none(),
        py::arg("packed_out") = py::none(),
        "XNOR-popcount convolution of packed NHWC activations; returns "
        "(out, packed signs of the output or None).");
  m.def("binary_block", &nasbnn::binary_block, py::arg("x"),
        py::arg("residual"), py::arg("weight1"), py::arg("stride1"),
        py::arg("padding1"), py::arg("scale1"), py::arg("bias1"),
        py::arg("act1_bias_in"), py::arg("act1_weight"),
        py::arg("act1_bias_out"), py::arg("pool_residual"),
        py::arg("sign2_bias"), py::arg("weight2"), py::arg("out_channels"),
        py::arg("scale2"), py::arg("bias2"), py::arg("act2_bias_in"),
        py::arg("act2_weight"), py::arg("act2_bias_out"),
        py::arg("pack_groups") = 0, py::arg("pack_bias") = py::none(),
        py::arg("out") = py::none(), py::arg("packed_out") = py::none(),
        py::arg("pool_output") = false,
        "A binary separable block (k x k conv, then 1x1 conv) of packed "
        "input x and float block input residual; returns (out, packed "
        "signs of the output or None); pool_output: out is the output's "
        "2x2 average pool (as pool_residual reads it), the signs whole.");
  py::class_<nasbnn::BlockChain>(m, "BlockChain")
      .def(py::init([](const std::vector<py::tuple>& blocks,
                       bool compact_taps) {
             std::vector<nasbnn::BlockArgs> args;
             for (const py::tuple& t : blocks)
               args.push_back(nasbnn::block_args(t));
             return nasbnn::BlockChain(std::move(args), compact_taps);
           }),
           py::arg("blocks"), py::arg("compact_taps") = true,
           "Blocks given as binary_block_args tuples, converted once "
           "(compact_taps: the k x k weights' taps also compacted).")
      .def("run", &nasbnn::BlockChain::run, py::arg("x_packed"),
           py::arg("x"), py::arg("keep"),
           "Run every block; the outputs of the blocks in keep.")
      .def("compacted", &nasbnn::BlockChain::compacted,
           "Per block: whether its k x k weight's taps are compacted.")
      .def("__len__", &nasbnn::BlockChain::size);
  py::class_<nasbnn::PackedLogits>(m, "PackedLogits")
      .def(py::init([](const py::tuple& stem,
                       const std::vector<py::tuple>& blocks,
                       const at::Tensor& head_weight_blocks,
                       const at::Tensor& head_bias,
                       std::vector<at::Tensor> watched) {
             std::vector<nasbnn::BlockArgs> args;
             for (const py::tuple& t : blocks)
               args.push_back(nasbnn::block_args(t));
             return nasbnn::PackedLogits(nasbnn::stem_call(stem),
                                         std::move(args), head_weight_blocks,
                                         head_bias, std::move(watched));
           }),
           py::arg("stem"), py::arg("blocks"),
           py::arg("head_weight_blocks"), py::arg("head_bias"),
           py::arg("watched"),
           "The stem (quantized_stem_args), the blocks (binary_block_args "
           "tuples) and the classifier head, converted once.")
      .def("run", &nasbnn::PackedLogits::run, py::arg("x"),
           "The logits of x; None once a watched tensor changed.");
  py::class_<nasbnn::TensorWatch>(m, "TensorWatch")
      .def(py::init<std::vector<at::Tensor>>(), py::arg("tensors"))
      .def("changed", &nasbnn::TensorWatch::changed,
           "Whether a tensor moved or was written in place since.")
      .def("__len__", &nasbnn::TensorWatch::size);
  m.def("rprelu_pack", &nasbnn::rprelu_pack, py::arg("x"),
        py::arg("act_bias_in"), py::arg("act_weight"),
        py::arg("act_bias_out"), py::arg("pack_groups") = 1,
        py::arg("pack_bias") = py::none(),
        "RPReLU of (N, C, H, W) float32 in channels_last memory, and the "
        "packed signs of (out + pack_bias).");
  m.def("quantized_stem", &nasbnn::quantized_stem, py::arg("x"),
        py::arg("quantize_input"), py::arg("step"), py::arg("q_min"),
        py::arg("q_max"),
        py::arg("weight_codes"), py::arg("stride"), py::arg("padding"),
        py::arg("scale"), py::arg("shift"), py::arg("act_bias_in"),
        py::arg("act_weight"), py::arg("act_bias_out"),
        py::arg("pack_groups") = 1, py::arg("pack_bias") = py::none(),
        "The 8-bit stem: integer codes of x, their exact convolution with "
        "weight_codes, the folded affine and RPReLU in channels_last "
        "memory, and the packed signs of the output.");
  m.def("classifier_head", &nasbnn::classifier_head, py::arg("feat"),
        py::arg("weight_blocks"), py::arg("bias"),
        "Global average pooling of a (N, C, H, W) float32 map (read in "
        "channels_last memory), then the fully connected layer of "
        "(ceil(O / 16), C, 16) weight blocks and (O, ) bias; returns "
        "(N, O).");
  m.def("roi_align_nhwc", &nasbnn::roi_align_nhwc, py::arg("input"),
        py::arg("rois"), py::arg("pooled_h"), py::arg("pooled_w"),
        py::arg("spatial_scale"), py::arg("sampling_ratio"),
        py::arg("aligned"),
        "Average RoIAlign of a channels_last (N, C, H, W) float32 map; "
        "returns (K, C, pooled_h, pooled_w) contiguous.");
  m.def("weight_norm_forward", &nasbnn::weight_norm_forward,
        py::arg("weight"), py::arg("official"), py::arg("eps"),
        py::arg("binary"),
        "Eq. (6) per row of a (C, n) float32 weight (+ alpha * sign): "
        "[out, mean, norm, alpha].");
  m.def("weight_norm_backward", &nasbnn::weight_norm_backward,
        py::arg("grad"), py::arg("weight"), py::arg("mean"), py::arg("norm"),
        py::arg("alpha"), py::arg("official"), py::arg("binary"),
        "The gradient of weight_norm_forward w.r.t. the weight.");
  m.def("kernel_map_forward", &nasbnn::kernel_map_forward,
        py::arg("weight"), py::arg("map"),
        "weight (O, I, K) @ map (K, J) -> (O, I, J), rows of the weight "
        "contiguous.");
  m.def("kernel_map_backward", &nasbnn::kernel_map_backward,
        py::arg("grad"), py::arg("weight"), py::arg("map"),
        py::arg("need_weight"), py::arg("need_map"),
        "Gradients of kernel_map_forward: [weight, map].");
  m.def("sign_conv_weight_grad", &nasbnn::sign_conv_weight_grad,
        py::arg("grad"), py::arg("x"), py::arg("kernel_size"),
        py::arg("stride"), py::arg("padding"), py::arg("groups"),
        "Weight gradient of a conv of a +-1 input by table lookup "
        "(undefined when x is not +-1).");
  m.def("sign_input_conv2d", &nasbnn::sign_input_conv2d, py::arg("x"),
        py::arg("weight"), py::arg("stride"), py::arg("padding"),
        py::arg("groups"),
        "Convolution of a +-1 input by table lookup (undefined when x is "
        "not +-1).");
  m.def("sign_conv_input_grad", &nasbnn::sign_conv_input_grad,
        py::arg("grad"), py::arg("weight"), py::arg("height"),
        py::arg("width"), py::arg("stride"), py::arg("padding"),
        py::arg("groups"),
        "Input gradient of a conv of a +-alpha_o weight by table lookup "
        "(undefined when the weight is not +-alpha_o per row).");
  m.def("rsign_forward", &nasbnn::rsign_forward, py::arg("x"),
        py::arg("bias"), "sign(x + bias) of a (N, C, H, W) float32 map.");
  m.def("rsign_backward", &nasbnn::rsign_backward, py::arg("grad"),
        py::arg("x"), py::arg("bias"),
        "ApproxSign gradients of rsign_forward: (grad_x, grad_bias).");
  m.def("rprelu_forward", &nasbnn::rprelu_forward, py::arg("x"),
        py::arg("bias_in"), py::arg("weight"), py::arg("bias_out"),
        "PReLU(x + bias_in) + bias_out of a (N, C, H, W) float32 map.");
  m.def("rprelu_backward", &nasbnn::rprelu_backward, py::arg("grad"),
        py::arg("x"), py::arg("bias_in"), py::arg("weight"),
        "Gradients of rprelu_forward: [x, bias_in, weight, bias_out].");
  m.def("rprelu_rsign_forward", &nasbnn::rprelu_rsign_forward,
        py::arg("y"), py::arg("r"), py::arg("bias_in"), py::arg("weight"),
        py::arg("bias_out"), py::arg("sign_bias"),
        "[out, sign]: out = PReLU(y + r + bias_in) + bias_out, sign = "
        "sign(out + sign_bias).");
  m.def("rprelu_rsign_backward", &nasbnn::rprelu_rsign_backward,
        py::arg("grad_out"), py::arg("grad_sign"), py::arg("y"),
        py::arg("r"), py::arg("bias_in"), py::arg("weight"),
        py::arg("bias_out"), py::arg("sign_bias"),
        "Gradients of rprelu_rsign_forward: [y (= r), bias_in, weight, "
        "bias_out, sign_bias].");
  m.def("avg_pool2x2_forward", &nasbnn::avg_pool2x2_forward, py::arg("x"),
        "2 x 2 average pooling (stride 2) of a (N, C, H, W) float32 map "
        "of even H and W.");
  m.def("avg_pool2x2_backward", &nasbnn::avg_pool2x2_backward,
        py::arg("grad"), py::arg("height"), py::arg("width"),
        "Input gradient of avg_pool2x2_forward.");
  m.def("batch_norm_forward", &nasbnn::batch_norm_forward, py::arg("x"),
        py::arg("weight"), py::arg("bias"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("momentum"), py::arg("eps"),
        "Training-mode batch norm of a (N, C, H, W) float32 map: [y, mean, "
        "invstd]; running statistics updated in place.");
  m.def("batch_norm_backward", &nasbnn::batch_norm_backward,
        py::arg("grad"), py::arg("x"), py::arg("weight"), py::arg("mean"),
        py::arg("invstd"),
        "Gradients of batch_norm_forward: [x, weight, bias].");
  m.def("nchw_from_nhwc", &nasbnn::nchw_from_nhwc, py::arg("x"),
        "A contiguous copy of a channels_last (N, C, H, W) float32 "
        "tensor, by 16 x 16 tiles.");
  m.def("pack_signs", &nasbnn::pack_signs, py::arg("x"), py::arg("groups"),
        "Signs of a (N, C, H, W) float32 tensor packed along C per group, "
        "|x[n, 0, 0, 0]| per n, and whether each n has one magnitude.");
  m.def("kernel_path", &nasbnn::kernel_path, "The kernel path in use.");
  m.def("set_kernel_path", &nasbnn::set_kernel_path, py::arg("path"),
        "Force 'scalar', 'avx2' or 'avx512' ('auto': the fastest).");
  m.def("available_kernel_paths", &nasbnn::available_kernel_paths);
  m.def("kernel_threads", &nasbnn::kernel_threads,
        "Threads the kernels run on with torch's current thread count.");
  m.def("cpu_features", &nasbnn::cpu_features);
}
