// The elementwise/row kernels (gemm, linear, RMSNorm, RoPE, SwiGLU, embedding, cross-entropy,
// AdamW) against double-precision references written here from the formulas. Each backward is
// checked twice: the double analytic gradient against central finite differences of the double
// forward (is the formula right?), and the fp32 kernel against that double gradient (is the
// kernel right?).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/vexp.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "tolerance.h"

namespace ringtrain {
namespace {

using test::compare;
using test::kF32;
using test::kFiniteDiff;

using Vec = std::vector<double>;

struct Rng {
  explicit Rng(uint32_t seed) : gen(seed) {}
  std::mt19937 gen;
  // Values already rounded to fp32, so the fp32 kernel and the double reference see the same
  // inputs.
  Vec uniform(size_t n, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> u(lo, hi);
    Vec v(n);
    for (auto& x : v) x = static_cast<float>(u(gen));
    return v;
  }
};

std::vector<float> to_f32(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }

// Central differences of a scalar function of x (h = 1e-6, as the tolerance table assumes).
Vec fd_grad(const std::function<double(const Vec&)>& f, Vec x) {
  const double h = 1e-6;
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

#define EXPECT_CLOSE(got, ref, n, tol, what) EXPECT_EQ(compare(got, ref, n, tol, what), "")

// ----------------------------------------------------------------------------------------------
// GEMM / linear

// C = alpha op(A) op(B) + beta C in double, row-major with leading dimensions.
void gemm_ref(bool ta, bool tb, int m, int n, int k, double alpha, const Vec& a, int lda,
              const Vec& b, int ldb, double beta, Vec& c, int ldc) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0.0;
      for (int p = 0; p < k; ++p)
        s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * s + beta * c[i * ldc + j];
    }
}

// Catches: a swapped transpose flag, wrong leading dimension, beta ignored, k = 0 garbage.
TEST(KernelsGemm, MatchesDoubleAllTransposes) {
  const uint32_t seed = 11;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int shapes[][3] = {{1, 1, 1}, {17, 5, 3}, {100, 257, 17}, {64, 64, 64}, {3, 1, 257},
                           {5, 7, 0}};
  for (auto& s : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int m = s[0], n = s[1], k = s[2];
        const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
        const int arows = ta ? k : m, brows = tb ? n : k;
        Vec a = rng.uniform(static_cast<size_t>(arows) * lda + 1);
        Vec b = rng.uniform(static_cast<size_t>(brows) * ldb + 1);
        Vec c = rng.uniform(static_cast<size_t>(m) * ldc);
        auto af = to_f32(a), bf = to_f32(b), cf = to_f32(c);
        gemm_ref(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, c, ldc);
        gemm(ta, tb, m, n, k, 0.5f, af.data(), lda, bf.data(), ldb, 0.25f, cf.data(), ldc);
        SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta
                                          << " tb=" << tb);
        EXPECT_CLOSE(cf.data(), c.data(), static_cast<int64_t>(c.size()), kF32, "gemm");
      }
}

// Catches: dw overwritten instead of accumulated, dx accumulated when it should be overwritten
// (and the reverse with accumulate_dx), the W[out, in] layout transposed.
TEST(KernelsGemm, LinearForwardBackward) {
  const uint32_t seed = 12;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int shapes[][3] = {{1, 1, 1}, {17, 100, 3}, {5, 17, 257}, {64, 48, 32}};
  for (auto& s : shapes) {
    const int n = s[0], in = s[1], out = s[2];
    SCOPED_TRACE(::testing::Message() << "n=" << n << " in=" << in << " out=" << out);
    Vec x = rng.uniform(static_cast<size_t>(n) * in), w = rng.uniform(static_cast<size_t>(out) * in);
    Vec dy = rng.uniform(static_cast<size_t>(n) * out);
    auto fwd = [&](const Vec& xx, const Vec& ww) {
      Vec y(static_cast<size_t>(n) * out, 0.0);
      gemm_ref(false, true, n, out, in, 1.0, xx, in, ww, in, 0.0, y, out);
      return y;
    };
    Vec y = fwd(x, w);
    auto xf = to_f32(x), wf = to_f32(w), dyf = to_f32(dy);
    std::vector<float> yf(y.size());
    linear_forward(xf.data(), wf.data(), yf.data(), n, in, out);
    EXPECT_CLOSE(yf.data(), y.data(), static_cast<int64_t>(y.size()), kF32, "linear y");

    // analytic double gradients of L = sum(y * dy)
    Vec dx(x.size(), 0.0), dw(w.size(), 0.0);
    gemm_ref(false, false, n, in, out, 1.0, dy, out, w, in, 0.0, dx, in);
    gemm_ref(true, false, out, in, n, 1.0, dy, out, x, in, 0.0, dw, in);
    if (x.size() * w.size() < 200000) {
      Vec fdx = fd_grad([&](const Vec& xx) { return dot(fwd(xx, w), dy); }, x);
      Vec fdw = fd_grad([&](const Vec& ww) { return dot(fwd(x, ww), dy); }, w);
      EXPECT_CLOSE(dx.data(), fdx.data(), static_cast<int64_t>(dx.size()), kFiniteDiff, "fd dx");
      EXPECT_CLOSE(dw.data(), fdw.data(), static_cast<int64_t>(dw.size()), kFiniteDiff, "fd dw");
    }
    // kernel: dx overwritten (start from NaN), dw accumulated onto 1.0
    std::vector<float> dxf(x.size(), std::numeric_limits<float>::quiet_NaN()), dwf(w.size(), 1.0f);
    linear_backward(dyf.data(), xf.data(), wf.data(), dxf.data(), dwf.data(), n, in, out);
    Vec dw1(dw);
    for (auto& e : dw1) e += 1.0;
    EXPECT_CLOSE(dxf.data(), dx.data(), static_cast<int64_t>(dx.size()), kF32, "linear dx");
    EXPECT_CLOSE(dwf.data(), dw1.data(), static_cast<int64_t>(dw.size()), kF32, "linear dw");
    // accumulate_dx adds; dx may be null
    std::vector<float> dxa(x.size(), 2.0f);
    linear_backward(dyf.data(), xf.data(), wf.data(), dxa.data(), dwf.data(), n, in, out, true);
    Vec dx2(dx);
    for (auto& e : dx2) e += 2.0;
    EXPECT_CLOSE(dxa.data(), dx2.data(), static_cast<int64_t>(dx.size()), kF32, "linear dx acc");
    linear_backward(dyf.data(), xf.data(), wf.data(), nullptr, dwf.data(), n, in, out);
  }
}

// ----------------------------------------------------------------------------------------------
// RMSNorm

Vec rms_fwd(const Vec& x, const Vec& w, int rows, int dim, double eps) {
  Vec y(x.size());
  for (int r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int j = 0; j < dim; ++j) ss += x[r * dim + j] * x[r * dim + j];
    const double rs = 1.0 / std::sqrt(ss / dim + eps);
    for (int j = 0; j < dim; ++j) y[r * dim + j] = w[j] * x[r * dim + j] * rs;
  }
  return y;
}

void rms_bwd(const Vec& dy, const Vec& x, const Vec& w, int rows, int dim, double eps, Vec& dx,
             Vec& dw) {
  dx.assign(x.size(), 0.0);
  dw.assign(w.size(), 0.0);
  for (int r = 0; r < rows; ++r) {
    double ss = 0.0, dotv = 0.0;
    for (int j = 0; j < dim; ++j) {
      ss += x[r * dim + j] * x[r * dim + j];
      dotv += w[j] * dy[r * dim + j] * x[r * dim + j];
    }
    const double rs = 1.0 / std::sqrt(ss / dim + eps);
    for (int j = 0; j < dim; ++j) {
      dx[r * dim + j] = rs * w[j] * dy[r * dim + j] - x[r * dim + j] * rs * rs * rs * dotv / dim;
      dw[j] += dy[r * dim + j] * x[r * dim + j] * rs;
    }
  }
}

// Catches: eps outside the sqrt, mean vs sum, the weight applied before normalizing, a missing
// term of the backward, dw not accumulated.
TEST(KernelsRmsNorm, ForwardBackward) {
  const uint32_t seed = 21;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int shapes[][2] = {{1, 1}, {3, 17}, {5, 100}, {2, 257}};
  for (auto& s : shapes) {
    const int rows = s[0], dim = s[1];
    SCOPED_TRACE(::testing::Message() << "rows=" << rows << " dim=" << dim);
    const double eps = 1e-5;
    Vec x = rng.uniform(static_cast<size_t>(rows) * dim), w = rng.uniform(dim, 0.5, 1.5);
    Vec dy = rng.uniform(x.size());
    Vec y = rms_fwd(x, w, rows, dim, eps), dx, dw;
    rms_bwd(dy, x, w, rows, dim, eps, dx, dw);
    Vec fdx = fd_grad([&](const Vec& xx) { return dot(rms_fwd(xx, w, rows, dim, eps), dy); }, x);
    Vec fdw = fd_grad([&](const Vec& ww) { return dot(rms_fwd(x, ww, rows, dim, eps), dy); }, w);
    EXPECT_CLOSE(dx.data(), fdx.data(), static_cast<int64_t>(dx.size()), kFiniteDiff, "fd dx");
    EXPECT_CLOSE(dw.data(), fdw.data(), static_cast<int64_t>(dw.size()), kFiniteDiff, "fd dw");

    RmsNormArgs a;
    a.rows = rows;
    a.dim = dim;
    a.eps = static_cast<float>(eps);
    auto xf = to_f32(x), wf = to_f32(w), dyf = to_f32(dy);
    std::vector<float> yf(x.size()), rstd(rows), dxf(x.size()), dwf(dim, 1.0f);
    rmsnorm_forward(a, xf.data(), wf.data(), yf.data(), rstd.data());
    EXPECT_CLOSE(yf.data(), y.data(), static_cast<int64_t>(y.size()), kF32, "rmsnorm y");
    rmsnorm_backward(a, dyf.data(), xf.data(), wf.data(), rstd.data(), dxf.data(), dwf.data());
    for (auto& e : dw) e += 1.0;
    EXPECT_CLOSE(dxf.data(), dx.data(), static_cast<int64_t>(dx.size()), kF32, "rmsnorm dx");
    EXPECT_CLOSE(dwf.data(), dw.data(), static_cast<int64_t>(dw.size()), kF32, "rmsnorm dw");
  }
}

// ----------------------------------------------------------------------------------------------
// RoPE

// The rotation in double with angle[i] given per (token, i); y = x cos + rotate_half(x) sin.
Vec rope_ref(const Vec& x, const std::vector<Vec>& angle, int tokens, int heads, int d,
             bool inverse) {
  Vec y(x.size());
  const int half = d / 2;
  for (int t = 0; t < tokens; ++t)
    for (int hh = 0; hh < heads; ++hh)
      for (int i = 0; i < half; ++i) {
        const size_t o = (static_cast<size_t>(t) * heads + hh) * d;
        const double c = std::cos(angle[t][i]), s = std::sin(angle[t][i]);
        const double x1 = x[o + i], x2 = x[o + i + half];
        if (!inverse) {
          y[o + i] = x1 * c - x2 * s;
          y[o + i + half] = x2 * c + x1 * s;
        } else {
          y[o + i] = x1 * c + x2 * s;
          y[o + i + half] = x2 * c - x1 * s;
        }
      }
  return y;
}

// Catches: interleaved (GPT-J) pairing instead of rotate_half, theta^(-i/d) instead of
// theta^(-2i/d), positions ignored, a backward that rotates forward again.
TEST(KernelsRope, MatchesHuggingFaceConvention) {
  const uint32_t seed = 31;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int shapes[][3] = {{1, 1, 2}, {17, 3, 16}, {5, 2, 64}, {9, 1, 128}};
  for (auto& s : shapes) {
    const int tokens = s[0], heads = s[1], d = s[2];
    SCOPED_TRACE(::testing::Message() << "tokens=" << tokens << " heads=" << heads << " d=" << d);
    std::vector<int32_t> pos(tokens);
    for (int t = 0; t < tokens; ++t) pos[t] = (t * 7 + 3) % 61;  // small, unordered
    const double theta = 10000.0;
    std::vector<Vec> angle(tokens, Vec(d / 2));
    for (int t = 0; t < tokens; ++t)
      for (int i = 0; i < d / 2; ++i) angle[t][i] = pos[t] * std::pow(theta, -2.0 * i / d);
    Vec x = rng.uniform(static_cast<size_t>(tokens) * heads * d), dy = rng.uniform(x.size());
    Vec y = rope_ref(x, angle, tokens, heads, d, false);
    Vec dx = rope_ref(dy, angle, tokens, heads, d, true);
    Vec fdx = fd_grad(
        [&](const Vec& xx) { return dot(rope_ref(xx, angle, tokens, heads, d, false), dy); }, x);
    EXPECT_CLOSE(dx.data(), fdx.data(), static_cast<int64_t>(dx.size()), kFiniteDiff, "fd dx");

    RopeArgs a;
    a.tokens = tokens;
    a.heads = heads;
    a.head_dim = d;
    a.theta = theta;
    a.positions = pos.data();
    auto xf = to_f32(x), dyf = to_f32(dy);
    rope_forward(a, xf.data());
    rope_backward(a, dyf.data());
    EXPECT_CLOSE(xf.data(), y.data(), static_cast<int64_t>(y.size()), kF32, "rope y");
    EXPECT_CLOSE(dyf.data(), dx.data(), static_cast<int64_t>(dx.size()), kF32, "rope dx");
  }
}

// At large positions the angle's fp32 rounding (as transformers computes it:
// inv_freq = 1 / theta ** (arange(0, d, 2).float() / d), freqs = pos.float() * inv_freq) moves
// cos/sin by ~1e-3, so we must round it the same way to agree with PyTorch.
// Catches: angles computed in double (which disagree with the reference model).
TEST(KernelsRope, LargePositionsUseFp32Angles) {
  const uint32_t seed = 32;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int tokens = 6, heads = 2, d = 64;
  std::vector<int32_t> pos = {0, 1, 4095, 65535, 100003, 524287};
  const double theta = 500000.0;
  std::vector<Vec> angle(tokens, Vec(d / 2));
  for (int t = 0; t < tokens; ++t)
    for (int i = 0; i < d / 2; ++i) {
      const float inv = 1.0f / std::pow(static_cast<float>(theta),
                                        static_cast<float>(2 * i) / static_cast<float>(d));
      angle[t][i] = static_cast<float>(pos[t]) * inv;  // fp32 product, as torch
    }
  Vec x = rng.uniform(static_cast<size_t>(tokens) * heads * d);
  Vec y = rope_ref(x, angle, tokens, heads, d, false);
  RopeArgs a;
  a.tokens = tokens;
  a.heads = heads;
  a.head_dim = d;
  a.theta = theta;
  a.positions = pos.data();
  auto xf = to_f32(x);
  rope_forward(a, xf.data());
  EXPECT_CLOSE(xf.data(), y.data(), static_cast<int64_t>(y.size()), kF32, "rope y large pos");
}

// The scaled frequencies against the formulas of transformers' modeling_rope_utils written out
// in double here (the exact fp32 order is tests/hf/rope_reference.py's business, against the
// library itself). Catches, without PyPI: llama3's bands swapped or its blend inverted, yarn's
// ramp the wrong way round or over the wrong dimensions, its attention factor missing or not
// derived from the factor, linear dividing the positions' wrong side.
TEST(KernelsRope, ScalingFrequenciesFollowTheFormulas) {
  const int d = 128;
  const double theta = 500000.0, pi = 3.14159265358979323846;
  auto base = [&](int i) { return 1.0 / std::pow(theta, 2.0 * i / d); };
  RopeScaling lin;
  lin.type = RopeType::kLinear;
  lin.factor = 4.0;
  RopeScaling l3;
  l3.type = RopeType::kLlama3;
  l3.factor = 8.0;
  l3.original_max_positions = 8192;
  l3.low_freq_factor = 1.0;
  l3.high_freq_factor = 4.0;
  RopeScaling yarn;
  yarn.type = RopeType::kYarn;
  yarn.factor = 16.0;
  yarn.original_max_positions = 4096;
  const RopeFrequencies fl = rope_frequencies(d, theta, lin), f3 = rope_frequencies(d, theta, l3),
                        fy = rope_frequencies(d, theta, yarn), fn = rope_frequencies(d, theta, RopeScaling{});
  // yarn's ramp: dimensions below `low` keep their frequency, above `high` are interpolated
  auto corr = [&](double rot) { return d * std::log(4096.0 / (rot * 2 * pi)) / (2 * std::log(theta)); };
  const double low = std::max(std::floor(corr(32.0)), 0.0), high = std::min(std::ceil(corr(1.0)), d - 1.0);
  for (int i = 0; i < d / 2; ++i) {
    SCOPED_TRACE("i " + std::to_string(i));
    const double f = base(i), wavelen = 2 * pi / f;
    EXPECT_NEAR(fn.inv_freq[i], f, 1e-6 * f);
    EXPECT_NEAR(fl.inv_freq[i], f / 4.0, 1e-6 * f);
    double w3 = f;  // llama3
    if (wavelen > 8192.0) {
      w3 = f / 8.0;
    } else if (wavelen >= 8192.0 / 4.0) {
      const double s = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      w3 = (1 - s) * f / 8.0 + s * f;
    }
    EXPECT_NEAR(f3.inv_freq[i], w3, 1e-6 * f);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    EXPECT_NEAR(fy.inv_freq[i], f / 16.0 * ramp + f * (1 - ramp), 1e-6 * f);
  }
  EXPECT_EQ(fl.attention_scaling, 1.0f);
  EXPECT_EQ(f3.attention_scaling, 1.0f);
  EXPECT_FLOAT_EQ(fy.attention_scaling, static_cast<float>(0.1 * std::log(16.0) + 1.0));
  // the highest frequency is never scaled by llama3 or yarn, the lowest always is
  EXPECT_EQ(f3.inv_freq[0], fn.inv_freq[0]);
  EXPECT_EQ(fy.inv_freq[0], fn.inv_freq[0]);
  EXPECT_NEAR(f3.inv_freq[d / 2 - 1], fn.inv_freq[d / 2 - 1] / 8.0, 1e-6 * fn.inv_freq[d / 2 - 1]);
  EXPECT_NEAR(fy.inv_freq[d / 2 - 1], fn.inv_freq[d / 2 - 1] / 16.0, 1e-6 * fn.inv_freq[d / 2 - 1]);
}

// Catches: yarn's attention factor not applied to cos and sin (forward and backward), or applied
// to the whole vector twice.
TEST(KernelsRope, YarnAttentionFactorScalesTheRotation) {
  const int tokens = 3, heads = 2, d = 16;
  std::vector<int32_t> pos = {0, 5, 999};
  Rng rng(41);
  const Vec x = rng.uniform(static_cast<size_t>(tokens) * heads * d);
  RopeArgs plain;
  plain.tokens = tokens;
  plain.heads = heads;
  plain.head_dim = d;
  plain.positions = pos.data();
  RopeArgs scaled = plain;
  scaled.scaling.type = RopeType::kYarn;
  scaled.scaling.factor = 1.0;  // frequencies unchanged: only the attention factor acts
  scaled.scaling.original_max_positions = 64;
  scaled.scaling.attention_factor = 1.5;
  for (bool backward : {false, true}) {
    auto a = to_f32(x), b = to_f32(x);
    if (backward) {
      rope_backward(plain, a.data());
      rope_backward(scaled, b.data());
    } else {
      rope_forward(plain, a.data());
      rope_forward(scaled, b.data());
    }
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], 1.5f * a[i], 1e-6) << "backward " << backward << " at " << i;
  }
}

// ----------------------------------------------------------------------------------------------
// SwiGLU

// Catches: sigmoid instead of silu, the derivative of silu missing its second term.
TEST(KernelsSwiglu, ForwardBackward) {
  const uint32_t seed = 41;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  for (int n : {1, 17, 100, 257}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    Vec g = rng.uniform(n, -6.0, 6.0), u = rng.uniform(n, -2.0, 2.0), dh = rng.uniform(n);
    auto fwd = [&](const Vec& gg, const Vec& uu) {
      Vec h(n);
      for (int i = 0; i < n; ++i) h[i] = gg[i] / (1.0 + std::exp(-gg[i])) * uu[i];
      return h;
    };
    Vec h = fwd(g, u), dg(n), du(n);
    for (int i = 0; i < n; ++i) {
      const double sig = 1.0 / (1.0 + std::exp(-g[i]));
      dg[i] = dh[i] * u[i] * sig * (1.0 + g[i] * (1.0 - sig));
      du[i] = dh[i] * g[i] * sig;
    }
    Vec fdg = fd_grad([&](const Vec& gg) { return dot(fwd(gg, u), dh); }, g);
    Vec fdu = fd_grad([&](const Vec& uu) { return dot(fwd(g, uu), dh); }, u);
    EXPECT_CLOSE(dg.data(), fdg.data(), n, kFiniteDiff, "fd dgate");
    EXPECT_CLOSE(du.data(), fdu.data(), n, kFiniteDiff, "fd dup");
    auto gf = to_f32(g), uf = to_f32(u), dhf = to_f32(dh);
    std::vector<float> hf(n), dgf(n), duf(n);
    swiglu_forward(gf.data(), uf.data(), hf.data(), n);
    swiglu_backward(dhf.data(), gf.data(), uf.data(), dgf.data(), duf.data(), n);
    EXPECT_CLOSE(hf.data(), h.data(), n, kF32, "swiglu h");
    EXPECT_CLOSE(dgf.data(), dg.data(), n, kF32, "swiglu dgate");
    EXPECT_CLOSE(duf.data(), du.data(), n, kF32, "swiglu dup");
  }
}

// ----------------------------------------------------------------------------------------------
// Embedding

// Catches: ids outside the shard read out of bounds instead of giving zero rows, the backward
// overwriting instead of accumulating repeated ids.
TEST(KernelsEmbedding, ShardedLookupAndScatter) {
  const uint32_t seed = 51;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int dim = 17, vocab = 13, tokens = 40;
  Vec table = rng.uniform(static_cast<size_t>(vocab) * dim);
  std::vector<int32_t> ids(tokens);
  std::mt19937 gen(seed);
  for (auto& id : ids) id = static_cast<int32_t>(gen() % vocab);
  ids[3] = ids[7] = ids[11] = 5;  // repeats
  Vec dout = rng.uniform(static_cast<size_t>(tokens) * dim);
  for (const auto& [start, local] : {std::pair{0, vocab}, std::pair{0, 6}, std::pair{6, 7}}) {
    SCOPED_TRACE(::testing::Message() << "shard start=" << start << " local=" << local);
    EmbeddingArgs a;
    a.tokens = tokens;
    a.dim = dim;
    a.vocab_start = start;
    a.vocab_local = local;
    std::vector<float> tf(table.begin() + static_cast<ptrdiff_t>(start) * dim,
                          table.begin() + static_cast<ptrdiff_t>(start + local) * dim);
    std::vector<float> out(static_cast<size_t>(tokens) * dim, -7.0f);
    embedding_forward(a, ids.data(), tf.data(), out.data());
    Vec ref(out.size(), 0.0), dref(static_cast<size_t>(local) * dim, 0.5);
    for (int t = 0; t < tokens; ++t) {
      const int row = ids[t] - start;
      if (row < 0 || row >= local) continue;
      for (int j = 0; j < dim; ++j) {
        ref[t * dim + j] = table[static_cast<size_t>(ids[t]) * dim + j];
        dref[row * dim + j] += dout[t * dim + j];
      }
    }
    EXPECT_CLOSE(out.data(), ref.data(), static_cast<int64_t>(ref.size()), kF32, "embedding");
    std::vector<float> dt(dref.size(), 0.5f);
    auto doutf = to_f32(dout);
    embedding_backward(a, ids.data(), doutf.data(), dt.data());
    EXPECT_CLOSE(dt.data(), dref.data(), static_cast<int64_t>(dref.size()), kF32, "dtable");
  }
}

// ----------------------------------------------------------------------------------------------
// Cross-entropy

Vec ce_losses(const Vec& z, const std::vector<int32_t>& t, int rows, int vocab, Vec* lse_out) {
  Vec loss(rows, 0.0);
  if (lse_out) lse_out->assign(rows, 0.0);
  for (int r = 0; r < rows; ++r) {
    double m = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < vocab; ++j) m = std::max(m, z[r * vocab + j]);
    double s = 0.0;
    for (int j = 0; j < vocab; ++j) s += std::exp(z[r * vocab + j] - m);
    const double lse = m + std::log(s);
    if (lse_out) (*lse_out)[r] = lse;
    if (t[r] >= 0) loss[r] = lse - z[r * vocab + t[r]];
  }
  return loss;
}

// Catches: ignored targets contributing loss or gradient, overflow with large logits, a shard
// that adds the target logit it does not own, row_scale not applied.
TEST(KernelsCrossEntropy, ForwardBackwardAndShards) {
  const uint32_t seed = 61;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int shapes[][2] = {{1, 1}, {17, 17}, {5, 257}, {3, 100}};
  for (auto& s : shapes) {
    const int rows = s[0], vocab = s[1];
    SCOPED_TRACE(::testing::Message() << "rows=" << rows << " vocab=" << vocab);
    Vec z = rng.uniform(static_cast<size_t>(rows) * vocab, -4.0, 4.0);
    if (rows > 2) z[2 * vocab] = 95.0f;  // exp(95) overflows fp32: the max shift must be used
    std::vector<int32_t> t(rows);
    std::mt19937 gen(seed + rows);
    for (auto& x : t) x = static_cast<int32_t>(gen() % vocab);
    if (rows > 1) t[1] = -1;  // ignored
    Vec scale = rng.uniform(rows, 0.1, 1.0);
    Vec lse;
    Vec loss = ce_losses(z, t, rows, vocab, &lse);
    auto objective = [&](const Vec& zz) {
      Vec l = ce_losses(zz, t, rows, vocab, nullptr);
      return dot(l, scale);
    };
    Vec grad(z.size(), 0.0);
    for (int r = 0; r < rows; ++r) {
      if (t[r] < 0) continue;
      for (int j = 0; j < vocab; ++j)
        grad[r * vocab + j] = (std::exp(z[r * vocab + j] - lse[r]) - (j == t[r] ? 1.0 : 0.0)) * scale[r];
    }
    Vec fd = fd_grad(objective, z);
    EXPECT_CLOSE(grad.data(), fd.data(), static_cast<int64_t>(grad.size()), kFiniteDiff, "fd");

    CrossEntropyArgs a;
    a.rows = rows;
    a.vocab_local = vocab;
    auto zf = to_f32(z), sf = to_f32(scale);
    std::vector<float> lf(rows), lsef(rows);
    cross_entropy_forward(a, zf.data(), t.data(), lf.data(), lsef.data());
    EXPECT_CLOSE(lf.data(), loss.data(), rows, kF32, "loss");
    EXPECT_CLOSE(lsef.data(), lse.data(), rows, kF32, "lse");
    std::vector<float> gf(zf);
    cross_entropy_backward(a, gf.data(), lsef.data(), t.data(), sf.data());
    EXPECT_CLOSE(gf.data(), grad.data(), static_cast<int64_t>(grad.size()), kF32, "grad");

    // Two vocab shards through the three reductions, combined as a tp all-reduce would.
    if (vocab < 2) continue;
    const int v0 = vocab / 2 + 1, v1 = vocab - v0;
    std::vector<float> zs[2];
    for (int sh = 0; sh < 2; ++sh)
      for (int r = 0; r < rows; ++r)
        for (int j = (sh ? v0 : 0); j < (sh ? vocab : v0); ++j) zs[sh].push_back(zf[r * vocab + j]);
    CrossEntropyArgs sa[2];
    sa[0].rows = sa[1].rows = rows;
    sa[0].vocab_local = v0;
    sa[1].vocab_local = v1;
    sa[1].vocab_start = v0;
    std::vector<float> mx[2], se[2], tl[2];
    for (int sh = 0; sh < 2; ++sh) {
      mx[sh].resize(rows);
      se[sh].resize(rows);
      tl[sh].resize(rows);
      cross_entropy_max(sa[sh], zs[sh].data(), mx[sh].data());
    }
    std::vector<float> gmax(rows), gsum(rows, 0.0f), gt(rows, 0.0f), glse(rows);
    for (int r = 0; r < rows; ++r) gmax[r] = std::max(mx[0][r], mx[1][r]);
    for (int sh = 0; sh < 2; ++sh) {
      cross_entropy_sumexp(sa[sh], zs[sh].data(), gmax.data(), se[sh].data());
      cross_entropy_target(sa[sh], zs[sh].data(), t.data(), tl[sh].data());
      for (int r = 0; r < rows; ++r) {
        gsum[r] += se[sh][r];
        gt[r] += tl[sh][r];
      }
    }
    Vec sloss(rows), sgrad(z.size());
    for (int r = 0; r < rows; ++r) {
      glse[r] = gmax[r] + std::log(gsum[r]);
      sloss[r] = t[r] < 0 ? 0.0 : static_cast<double>(glse[r]) - gt[r];
    }
    EXPECT_CLOSE(sloss.data(), loss.data(), rows, kF32, "sharded loss");
    for (int sh = 0; sh < 2; ++sh) {
      cross_entropy_backward(sa[sh], zs[sh].data(), glse.data(), t.data(), sf.data());
      const int vl = sh ? v1 : v0, off = sh ? v0 : 0;
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < vl; ++j) sgrad[r * vocab + off + j] = zs[sh][r * vl + j];
    }
    EXPECT_CLOSE(sgrad.data(), grad.data(), static_cast<int64_t>(grad.size()), kF32, "sharded grad");
  }
}

// ----------------------------------------------------------------------------------------------
// AdamW

// Catches: weight decay folded into the gradient (Adam-L2 instead of AdamW), missing or
// off-by-one bias correction, eps inside the sqrt.
TEST(KernelsAdamW, MatchesTorchFormulaOverSteps) {
  const uint32_t seed = 71;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Rng rng(seed);
  const int n = 257;
  AdamWArgs a;
  a.lr = 1e-2f;
  a.beta1 = 0.9f;
  a.beta2 = 0.95f;
  a.eps = 1e-8f;
  a.weight_decay = 0.1f;
  Vec p = rng.uniform(n), m(n, 0.0), v(n, 0.0);
  auto pf = to_f32(p);
  std::vector<float> mf(n, 0.0f), vf(n, 0.0f);
  for (int step = 1; step <= 5; ++step) {
    Vec g = rng.uniform(n);
    if (step == 3) g[0] = 0.0;  // zero gradient: p still decays
    a.step = step;
    auto gf = to_f32(g);
    adamw_step(a, pf.data(), gf.data(), mf.data(), vf.data(), n);
    const double lr = a.lr, b1 = a.beta1, b2 = a.beta2, eps = a.eps, wd = a.weight_decay;
    for (int i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double mhat = m[i] / (1 - std::pow(b1, step));
      const double vhat = v[i] / (1 - std::pow(b2, step));
      p[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + wd * p[i]);
    }
    SCOPED_TRACE("step " + std::to_string(step));
    EXPECT_CLOSE(mf.data(), m.data(), n, kF32, "m");
    EXPECT_CLOSE(vf.data(), v.data(), n, kF32, "v");
    EXPECT_CLOSE(pf.data(), p.data(), n, kF32, "param");
  }
}

// Catches: a float accumulator losing the norm of many small gradients, scale not applied.
TEST(KernelsAdamW, SumSquaresAndScale) {
  std::vector<float> x(1000003, 1e-3f);
  x[5] = 3.0f;
  const double ref = 1000002.0 * static_cast<double>(1e-3f) * static_cast<double>(1e-3f) + 9.0;
  EXPECT_NEAR(sum_squares(x.data(), static_cast<int64_t>(x.size())), ref, 1e-9 * ref);
  scale_inplace(x.data(), static_cast<int64_t>(x.size()), 0.5f);
  EXPECT_EQ(x[5], 1.5f);
  EXPECT_EQ(x[6], 0.5e-3f);
}

// ----------------------------------------------------------------------------------------------
// The attention kernels' exp

// Catches: a polynomial or range-reduction error in the vectorized exp, masked (-inf) scores
// giving a nonzero probability.
TEST(KernelsVexp, AccurateOverRange) {
  double worst = 0.0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / 2000000.0f;
    const double ref = std::exp(static_cast<double>(x));
    const double got = cpu::exp_approx(x);
    worst = std::max(worst, std::fabs(got - ref) / ref);
  }
  EXPECT_LT(worst, 4 * 1.2e-7) << "max relative error " << worst;
  EXPECT_EQ(cpu::exp_approx(0.0f), 1.0f);
  EXPECT_EQ(cpu::exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(cpu::exp_approx(-100.0f), 0.0f);
  std::vector<float> row = {0.0f, -1.0f, -std::numeric_limits<float>::infinity(), 2.0f};
  cpu::exp_shift_inplace(row.data(), 4, 2.0f);
  EXPECT_NEAR(row[0], std::exp(-2.0), 1e-7);
  EXPECT_EQ(row[2], 0.0f);
  EXPECT_EQ(row[3], 1.0f);
}

}  // namespace
}  // namespace ringtrain
