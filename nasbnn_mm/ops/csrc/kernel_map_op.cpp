// kernel_map_forward / kernel_map_backward of nasbnn_mm._ext: the
// kernel transformations and the Bi-Transformation of a sliced supernet
// weight, y[o, i, :] = w[o, i, :] @ m, for a (O, I, K) view whose K
// flattened taps are contiguous (any strides over O and I, e.g. a column
// slice of the shared weight) and a (K, J) map, K, J <= 64. PyTorch runs
// it as one GEMM over O * I rows after copying a sliced view; BLAS is slow
// at so few columns; on the avx512 kernel path these loops keep the J sums
// of 4 rows in registers (portable loops on the other paths). Rows are
// split over torch's threads; the map's gradient sums rows in fixed
// chunks, added in order, so results do not depend on the threads.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dispatch.h"
#include "ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace nasbnn {
namespace {

constexpr int64_t kMaxTaps = 64;
constexpr int64_t kChunkRows = 2048;

// Rows of a (O, I, K) view: row r = (r / I, r % I) at w + o * so + i * si.
struct RowView {
  const float* w;
  int64_t rows, inner, so, si;
};

// The rows of a view from `begin` on, in order, without a division each.
class RowCursor {
 public:
  RowCursor(const RowView& v, int64_t begin)
      : v_(v), o_(begin / v.inner), i_(begin % v.inner) {}
  const float* next() {
    const float* row = v_.w + o_ * v_.so + i_ * v_.si;
    if (++i_ == v_.inner) i_ = 0, ++o_;
    return row;
  }

 private:
  const RowView& v_;
  int64_t o_, i_;
};

RowView check_view(const Tensor& t, int64_t k, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat &&
                  t.dim() == 3 && t.size(2) == k &&
                  (t.stride(2) == 1 || t.size(2) == 1),
              "kernel_map: ", name, " must be a (O, I, ", k,
              ") CPU float32 tensor with contiguous rows, got ",
              t.scalar_type(), " of shape ", t.sizes(), " and strides ",
              t.strides());
  return {t.data_ptr<float>(), t.size(0) * t.size(1), t.size(1), t.stride(0),
          t.stride(1)};
}

// The (K, J) map copied into rows of Jp >= J floats, zero padded.
std::vector<float> padded_map(const Tensor& m, int64_t jp, bool transpose) {
  const Tensor c = (transpose ? m.t() : m).contiguous();
  const int64_t k = c.size(0), j = c.size(1);
  std::vector<float> out(k * jp, 0.f);
  const float* src = c.data_ptr<float>();
  for (int64_t a = 0; a < k; ++a)
    std::copy(src + a * j, src + (a + 1) * j, out.data() + a * jp);
  return out;
}

// y[r, :J] = w_r @ m for rows [begin, end); m padded to Jp columns.
template <int64_t Jp>
__attribute__((target_clones("avx512f", "avx2", "default"))) void map_rows(
    const RowView& v, int64_t begin, int64_t end, const float* m, int64_t k,
    int64_t j, float* y) {
  RowCursor rows(v, begin);
  for (int64_t r = begin; r < end; ++r) {
    const float* w = rows.next();
    float acc[Jp] = {};
    for (int64_t a = 0; a < k; ++a) {
      const float s = w[a];
      const float* ma = m + a * Jp;
      for (int64_t b = 0; b < Jp; ++b) acc[b] = std::fma(s, ma[b], acc[b]);
    }
    std::copy(acc, acc + j, y + r * j);
  }
}

// part[a, :] += w_r[a] * g_r for rows [begin, end); g rows of J floats,
// part rows of Jp.
template <int64_t Jp>
__attribute__((target_clones("avx512f", "avx2", "default"))) void
outer_rows(const RowView& v, int64_t begin, int64_t end, const float* g,
           int64_t k, int64_t j, float* part) {
  RowCursor rows(v, begin);
  for (int64_t r = begin; r < end; ++r) {
    const float* w = rows.next();
    float gr[Jp] = {};
    std::copy(g + r * j, g + (r + 1) * j, gr);
    for (int64_t a = 0; a < k; ++a) {
      const float s = w[a];
      float* pa = part + a * Jp;
      for (int64_t b = 0; b < Jp; ++b) pa[b] = std::fma(s, gr[b], pa[b]);
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// The last of NV vectors of a row of j floats, 16 * (NV - 1) < j <= 16 * NV.
inline __mmask16 tail_mask(int64_t j, int nv) {
  return static_cast<__mmask16>((1u << (j - 16 * (nv - 1))) - 1u);
}

// Every sum of acc set to 0.
template <int64_t R, int NV>
__attribute__((target("avx512f"))) inline void set_zero(
    __m512 (&acc)[R][NV]) {
  for (int64_t i = 0; i < R; ++i)
    for (int n = 0; n < NV; ++n) acc[i][n] = _mm512_setzero_ps();
}

// map_rows, 4 rows at a time: 4 * NV sums in registers, each map row
// loaded once per 4 rows.
template <int NV>
__attribute__((target("avx512f"))) void map_rows_avx512(
    const RowView& v, int64_t begin, int64_t end, const float* m, int64_t k,
    int64_t j, float* y) {
  constexpr int64_t kRows = 4, Jp = 16 * NV;
  const __mmask16 tail = tail_mask(j, NV);
  RowCursor rows(v, begin);
  for (int64_t r = begin; r < end; r += kRows) {
    const int64_t count = std::min(kRows, end - r);
    const float* w[kRows] = {rows.next()};  // rows past `count`: row 0
    for (int64_t i = 1; i < kRows; ++i) w[i] = i < count ? rows.next() : w[0];
    __m512 acc[kRows][NV];
    set_zero(acc);
    for (int64_t a = 0; a < k; ++a) {
      __m512 ma[NV];
      for (int n = 0; n < NV; ++n) ma[n] = _mm512_loadu_ps(m + a * Jp + 16 * n);
      for (int64_t i = 0; i < kRows; ++i) {
        const __m512 s = _mm512_set1_ps(w[i][a]);
        for (int n = 0; n < NV; ++n)
          acc[i][n] = _mm512_fmadd_ps(s, ma[n], acc[i][n]);
      }
    }
    for (int64_t i = 0; i < count; ++i) {
      float* out = y + (r + i) * j;
      for (int n = 0; n + 1 < NV; ++n)
        _mm512_storeu_ps(out + 16 * n, acc[i][n]);
      _mm512_mask_storeu_ps(out + 16 * (NV - 1), tail, acc[i][NV - 1]);
    }
  }
}

// part[a0 + t, :] += w[r][a0 + t] * g[r], t < Taps, over `rows` rows:
// the Taps * NV sums in registers. The loop body has no branch and Taps is
// a compile-time constant: otherwise GCC keeps the sums in memory.
template <int NV, int Taps>
__attribute__((target("avx512f"))) void outer_taps_avx512(
    const float* const* w, const float* g, int64_t rows, int64_t j,
    int64_t a0, __mmask16 tail, float* part) {
  constexpr int64_t Jp = 16 * NV;
  __m512 acc[Taps][NV];
  for (int t = 0; t < Taps; ++t)
    for (int n = 0; n < NV; ++n)
      acc[t][n] = _mm512_loadu_ps(part + (a0 + t) * Jp + 16 * n);
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w[r] + a0;
    const float* gr = g + r * j;
    __m512 gv[NV];
    for (int n = 0; n + 1 < NV; ++n) gv[n] = _mm512_loadu_ps(gr + 16 * n);
    gv[NV - 1] = _mm512_maskz_loadu_ps(tail, gr + 16 * (NV - 1));
    for (int t = 0; t < Taps; ++t) {
      const __m512 s = _mm512_set1_ps(wr[t]);
      for (int n = 0; n < NV; ++n)
        acc[t][n] = _mm512_fmadd_ps(s, gv[n], acc[t][n]);
    }
  }
  for (int t = 0; t < Taps; ++t)
    for (int n = 0; n < NV; ++n)
      _mm512_storeu_ps(part + (a0 + t) * Jp + 16 * n, acc[t][n]);
}

// outer_rows over runs of kRunRows rows (a run's rows and gradients stay
// in L1 across its passes over part; each sum still adds the rows in
// order), 16 / NV rows of part at a time, then 4, then 1.
template <int NV>
__attribute__((target("avx512f"))) void outer_rows_avx512(
    const RowView& v, int64_t begin, int64_t end, const float* g, int64_t k,
    int64_t j, float* part) {
  constexpr int kTaps = 16 / NV;
  constexpr int64_t kRunRows = 64;
  const __mmask16 tail = tail_mask(j, NV);
  const float* w[kRunRows];
  RowCursor cursor(v, begin);
  for (int64_t r0 = begin; r0 < end; r0 += kRunRows) {
    const int64_t rows = std::min(end - r0, kRunRows);
    for (int64_t r = 0; r < rows; ++r) w[r] = cursor.next();
    const float* gr = g + r0 * j;
    int64_t a0 = 0;
    for (; a0 + kTaps <= k; a0 += kTaps)
      outer_taps_avx512<NV, kTaps>(w, gr, rows, j, a0, tail, part);
    for (; a0 + 4 <= k; a0 += 4)
      outer_taps_avx512<NV, 4>(w, gr, rows, j, a0, tail, part);
    for (; a0 < k; ++a0)
      outer_taps_avx512<NV, 1>(w, gr, rows, j, a0, tail, part);
  }
}
#endif

// Calls f.template operator()<Jp>() with the padded width for j columns.
template <typename F>
void with_width(int64_t j, F f) {
  if (j <= 16)
    f.template operator()<16>();
  else if (j <= 32)
    f.template operator()<32>();
  else
    f.template operator()<64>();
}

int64_t padded(int64_t j) { return j <= 16 ? 16 : j <= 32 ? 32 : 64; }

// The register-blocked loops run on the avx512 kernel path.
bool use_avx512() { return kernel_path() == "avx512"; }

// (O, I, J) = view @ m, m (K, J) (or m^T when transpose).
Tensor map_view(const Tensor& x, const Tensor& m, bool transpose,
                const char* name) {
  const int64_t k = transpose ? m.size(1) : m.size(0);
  const int64_t j = transpose ? m.size(0) : m.size(1);
  const RowView v = check_view(x, k, name);
  Tensor y = at::empty({x.size(0), x.size(1), j}, x.options());
  if (v.rows == 0) return y;
  const std::vector<float> mp = padded_map(m, padded(j), transpose);
  float* out = y.data_ptr<float>();
  const bool avx512 = use_avx512();
  with_width(j, [&]<int64_t Jp>() {
    at::parallel_for(0, v.rows, 256, [&](int64_t begin, int64_t end) {
#if defined(__x86_64__) && defined(__GNUC__)
      if (avx512)
        return map_rows_avx512<Jp / 16>(v, begin, end, mp.data(), k, j, out);
#endif
      map_rows<Jp>(v, begin, end, mp.data(), k, j, out);
    });
  });
  return y;
}

void check_map(const Tensor& m) {
  TORCH_CHECK(m.device().is_cpu() && m.scalar_type() == at::kFloat &&
                  m.dim() == 2 && m.size(0) <= kMaxTaps &&
                  m.size(1) <= kMaxTaps,
              "kernel_map: the map must be a (K, J) CPU float32 matrix, "
              "K, J <= ", kMaxTaps, ", got ", m.scalar_type(), " of shape ",
              m.sizes());
}

}  // namespace

Tensor kernel_map_forward(const Tensor& weight, const Tensor& map) {
  check_map(map);
  return map_view(weight, map, false, "weight");
}

std::vector<Tensor> kernel_map_backward(const Tensor& grad,
                                        const Tensor& weight,
                                        const Tensor& map, bool need_weight,
                                        bool need_map) {
  check_map(map);
  const int64_t k = map.size(0), j = map.size(1);
  const RowView v = check_view(weight, k, "weight");
  const Tensor g = grad.contiguous();
  TORCH_CHECK(g.dim() == 3 && g.size(0) == weight.size(0) &&
                  g.size(1) == weight.size(1) && g.size(2) == j,
              "kernel_map: grad ", g.sizes(), " does not match weight ",
              weight.sizes(), " @ map ", map.sizes());
  Tensor grad_weight, grad_map;
  if (need_weight) grad_weight = map_view(g, map, true, "grad");
  if (need_map) {
    const int64_t jp = padded(j);
    const int64_t chunks = (v.rows + kChunkRows - 1) / kChunkRows;
    std::vector<float> parts(std::max<int64_t>(chunks, 1) * k * jp, 0.f);
    const float* gd = g.data_ptr<float>();
    const bool avx512 = use_avx512();
    with_width(j, [&]<int64_t Jp>() {
      at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t c = begin; c < end; ++c) {
          const int64_t first = c * kChunkRows;
          const int64_t last = std::min(v.rows, first + kChunkRows);
          float* part = parts.data() + c * k * jp;
#if defined(__x86_64__) && defined(__GNUC__)
          if (avx512) {
            outer_rows_avx512<Jp / 16>(v, first, last, gd, k, j, part);
            continue;
          }
#endif
          outer_rows<Jp>(v, first, last, gd, k, j, part);
        }
      });
    });
    grad_map = at::zeros({k, j}, map.options());
    float* out = grad_map.data_ptr<float>();
    for (int64_t c = 0; c < chunks; ++c)
      for (int64_t a = 0; a < k; ++a)
        for (int64_t b = 0; b < j; ++b)
          out[a * j + b] += parts[(c * k + a) * jp + b];
  }
  return {grad_weight, grad_map};
}

}  // namespace nasbnn
