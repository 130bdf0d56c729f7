// Torch bindings of the bit-packed binary convolution (module
// nasbnn_mm._ext). Shapes and layouts: see binary_kernels.h.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <map>
#include <vector>

#include "dispatch.h"

namespace nasbnn {
namespace {

using at::Tensor;
using OptTensor = c10::optional<Tensor>;

int64_t words_for(int64_t bits) { return (bits + 63) / 64; }

const uint64_t* u64(const Tensor& t) {
  return reinterpret_cast<const uint64_t*>(t.data_ptr());
}

void check_packed(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kUInt64 &&
                  t.is_contiguous(),
              name, ": expected a contiguous CPU uint64 tensor, got ",
              t.scalar_type(), " on ", t.device());
}

const float* channel_vector(const OptTensor& t, int64_t channels,
                            const char* name) {
  if (!t.has_value() || !t->defined()) return nullptr;
  TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat &&
                  t->dim() == 1 && t->size(0) == channels &&
                  t->is_contiguous(),
              name, ": expected a contiguous float32 CPU vector of ",
              channels, " channels, got ", t->scalar_type(), " of shape ",
              t->sizes());
  return t->data_ptr<float>();
}

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
  const Kernels& k = active_kernels();
  at::parallel_for(0, xc.numel() / channels, 256,
                   [&](int64_t b, int64_t e) { k.pack_pixels(args, b, e); });
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

// Pixels per work unit of the 1x1 GEMM path.
constexpr int64_t kGemmUnit = 64;

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

Tensor binary_conv2d(const Tensor& x, const Tensor& weight,
                     int64_t in_channels, int64_t out_channels,
                     int64_t stride, int64_t padding, const OptTensor& scale,
                     const OptTensor& bias, const OptTensor& residual,
                     const OptTensor& act_bias_in,
                     const OptTensor& act_weight,
                     const OptTensor& act_bias_out) {
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
  const int64_t oh = (h + 2 * padding - k) / stride + 1;
  const int64_t ow = (w + 2 * padding - k) / stride + 1;
  TORCH_CHECK(h + 2 * padding >= k && w + 2 * padding >= k,
              "binary_conv2d: input ", h, "x", w, " smaller than kernel ", k);
  Tensor out = at::empty({n, oh, ow, out_channels},
                         x.options().dtype(at::kFloat));
  const float* res = nullptr;
  int64_t res_channels = 0;
  Tensor res_c;
  if (residual.has_value() && residual->defined()) {
    res_c = residual->contiguous();
    TORCH_CHECK(res_c.scalar_type() == at::kFloat && res_c.dim() == 4 &&
                    res_c.size(0) == n && res_c.size(1) == oh &&
                    res_c.size(2) == ow && res_c.size(3) > 0,
                "binary_conv2d: residual must be float32 (", n, ", ", oh,
                ", ", ow, ", C), got ", res_c.scalar_type(), " ",
                res_c.sizes());
    res = res_c.data_ptr<float>();
    res_channels = res_c.size(3);
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
  const ConvArgs args{u64(x),
                      u64(weight),
                      out.data_ptr<float>(),
                      n, h, w,
                      groups, words, in_g,
                      out_channels, out_g, weight.size(1),
                      k, stride, padding,
                      oh, ow,
                      channel_vector(scale, out_channels,
                                     "binary_conv2d: scale"),
                      channel_vector(bias, out_channels,
                                     "binary_conv2d: bias"),
                      res, res_channels,
                      a_in, a_w, a_out};
  run_conv(active_kernels(), args,
           k == 1 && stride == 1 && padding == 0);
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
#endif
  return f;
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
        "XNOR-popcount convolution of packed NHWC activations.");
  m.def("kernel_path", &nasbnn::kernel_path, "The kernel path in use.");
  m.def("set_kernel_path", &nasbnn::set_kernel_path, py::arg("path"),
        "Force 'scalar', 'avx2' or 'avx512' ('auto': the fastest).");
  m.def("available_kernel_paths", &nasbnn::available_kernel_paths);
  m.def("kernel_threads", &nasbnn::kernel_threads,
        "Threads the kernels run on with torch's current thread count.");
  m.def("cpu_features", &nasbnn::cpu_features);
}
