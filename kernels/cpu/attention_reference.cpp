// Naive attention in double precision: the test reference. It materializes each head's
// [s_q, s_k] score matrix and applies the same position/document/window mask and GQA rules as the flash kernel,
// written as plainly as possible so that it is obviously right.
#include "kernels/attention_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "src/core/error.h"

namespace ringtrain {
namespace {

struct RefGeom {
  int64_t q_row, k_row;  // strides between consecutive tokens
  int group;
  double scale;
};

RefGeom ref_geom(const AttentionArgs& a) {
  RT_CHECK(a.h_kv > 0 && a.h % a.h_kv == 0, "attention: h=", a.h, " not a multiple of h_kv=",
           a.h_kv);
  RT_CHECK((a.q_doc == nullptr) == (a.k_doc == nullptr), "attention: document ids for one side only");
  RefGeom g;
  g.q_row = static_cast<int64_t>(a.h) * a.d;
  g.k_row = static_cast<int64_t>(a.h_kv) * a.d;
  g.group = a.h / a.h_kv;
  g.scale = a.scale != 0.0f ? static_cast<double>(a.scale) : 1.0 / std::sqrt(static_cast<double>(a.d));
  return g;
}

int32_t qpos(const AttentionArgs& a, int i) { return a.q_pos ? a.q_pos[i] : i; }
int32_t kpos(const AttentionArgs& a, int j) { return a.k_pos ? a.k_pos[j] : j; }

// The mask of kernels/attention.h, term by term.
bool visible(const AttentionArgs& a, int bi, int i, int j) {
  if (a.causal && kpos(a, j) > qpos(a, i)) return false;
  if (a.q_doc && a.q_doc[static_cast<int64_t>(bi) * a.s_q + i] != a.k_doc[static_cast<int64_t>(bi) * a.s_k + j])
    return false;
  return a.window <= 0 || qpos(a, i) - kpos(a, j) < a.window;
}

// P[s_q, s_k] = softmax of the masked scores of (batch bi, head hh); returns per-row lse.
void probs(const AttentionArgs& a, const RefGeom& g, const double* q, const double* k, int bi,
           int hh, std::vector<double>& p, std::vector<double>& lse) {
  const int kv = hh / g.group;
  const double inf = std::numeric_limits<double>::infinity();
  p.assign(static_cast<size_t>(a.s_q) * a.s_k, 0.0);
  lse.assign(a.s_q, -inf);
  for (int i = 0; i < a.s_q; ++i) {
    const double* qi = q + (static_cast<int64_t>(bi) * a.s_q + i) * g.q_row + hh * a.d;
    double* row = p.data() + static_cast<int64_t>(i) * a.s_k;
    double mx = -inf;
    for (int j = 0; j < a.s_k; ++j) {
      if (!visible(a, bi, i, j)) {
        row[j] = -inf;
        continue;
      }
      const double* kj = k + (static_cast<int64_t>(bi) * a.s_k + j) * g.k_row + kv * a.d;
      double s = 0.0;
      for (int c = 0; c < a.d; ++c) s += qi[c] * kj[c];
      row[j] = s * g.scale;
      mx = std::max(mx, row[j]);
    }
    if (mx == -inf) {  // no visible key
      for (int j = 0; j < a.s_k; ++j) row[j] = 0.0;
      continue;
    }
    double sum = 0.0;
    for (int j = 0; j < a.s_k; ++j) sum += std::exp(row[j] - mx);
    for (int j = 0; j < a.s_k; ++j) row[j] = std::exp(row[j] - mx) / sum;
    lse[i] = mx + std::log(sum);
  }
}

}  // namespace

void attention_reference_forward(const AttentionArgs& a, const double* q, const double* k,
                                 const double* v, double* out, double* lse) {
  const RefGeom g = ref_geom(a);
  std::vector<double> p, row_lse;
  for (int bi = 0; bi < a.b; ++bi)
    for (int hh = 0; hh < a.h; ++hh) {
      probs(a, g, q, k, bi, hh, p, row_lse);
      const int kv = hh / g.group;
      for (int i = 0; i < a.s_q; ++i) {
        double* o = out + (static_cast<int64_t>(bi) * a.s_q + i) * g.q_row + hh * a.d;
        for (int c = 0; c < a.d; ++c) o[c] = 0.0;
        for (int j = 0; j < a.s_k; ++j) {
          const double pij = p[static_cast<int64_t>(i) * a.s_k + j];
          if (pij == 0.0) continue;
          const double* vj = v + (static_cast<int64_t>(bi) * a.s_k + j) * g.k_row + kv * a.d;
          for (int c = 0; c < a.d; ++c) o[c] += pij * vj[c];
        }
        if (lse != nullptr) lse[(static_cast<int64_t>(bi) * a.h + hh) * a.s_q + i] = row_lse[i];
      }
    }
}

// For L = sum(out * dout), out = P V, P = softmax(S), S = scale Q K^T (masked):
//   dV = P^T dO;  dP = dO V^T;  dS = P (dP - rowsum(P dP));  dQ = scale dS K;  dK = scale dS^T Q
void attention_reference_backward(const AttentionArgs& a, const double* q, const double* k,
                                  const double* v, const double* dout, double* dq, double* dk,
                                  double* dv) {
  const RefGeom g = ref_geom(a);
  const int64_t nq = static_cast<int64_t>(a.b) * a.s_q * g.q_row;
  const int64_t nk = static_cast<int64_t>(a.b) * a.s_k * g.k_row;
  for (int64_t i = 0; i < nq; ++i) dq[i] = 0.0;
  for (int64_t i = 0; i < nk; ++i) dk[i] = dv[i] = 0.0;
  std::vector<double> p, row_lse, ds(static_cast<size_t>(a.s_q) * a.s_k);
  for (int bi = 0; bi < a.b; ++bi)
    for (int hh = 0; hh < a.h; ++hh) {
      probs(a, g, q, k, bi, hh, p, row_lse);
      const int kv = hh / g.group;
      auto qrow = [&](auto* base, int i) {
        return base + (static_cast<int64_t>(bi) * a.s_q + i) * g.q_row + hh * a.d;
      };
      auto krow = [&](auto* base, int j) {
        return base + (static_cast<int64_t>(bi) * a.s_k + j) * g.k_row + kv * a.d;
      };
      for (int i = 0; i < a.s_q; ++i) {
        const double* doi = qrow(dout, i);
        double rowdot = 0.0;
        for (int j = 0; j < a.s_k; ++j) {
          const double pij = p[static_cast<int64_t>(i) * a.s_k + j];
          const double* vj = krow(v, j);
          double dp = 0.0;
          for (int c = 0; c < a.d; ++c) dp += doi[c] * vj[c];
          ds[static_cast<int64_t>(i) * a.s_k + j] = dp;
          rowdot += pij * dp;
        }
        for (int j = 0; j < a.s_k; ++j) {
          const int64_t ij = static_cast<int64_t>(i) * a.s_k + j;
          ds[ij] = p[ij] * (ds[ij] - rowdot);
        }
      }
      for (int i = 0; i < a.s_q; ++i)
        for (int j = 0; j < a.s_k; ++j) {
          const int64_t ij = static_cast<int64_t>(i) * a.s_k + j;
          const double pij = p[ij], dsij = ds[ij];
          if (pij == 0.0 && dsij == 0.0) continue;
          const double *qi = qrow(q, i), *doi = qrow(dout, i), *kj = krow(k, j);
          double *dqi = qrow(dq, i), *dkj = krow(dk, j), *dvj = krow(dv, j);
          for (int c = 0; c < a.d; ++c) {
            dvj[c] += pij * doi[c];
            dqi[c] += g.scale * dsij * kj[c];
            dkj[c] += g.scale * dsij * qi[c];
          }
        }
    }
}

// First-order propagation of the four roundings, in the reference's own P (see the header):
//   out_ic  = sum_j P̃_ij v_jc: var = r (sum_j P_ij² v_jc² + out_ic²)   (P rounded; out rounded)
//   delta_i = sum_c dO_ic out_ic: var_Δi = sum_c dO_ic² var(out_ic)       (from the stored out)
//   dS_ij   = P_ij (dP_ij - delta_i), rounded: relative r, plus -P_ij δdelta_i
//   dV_jc   = sum_i P̃_ij dO_ic: var = r sum_i P_ij² dO_ic²
//   dQ_ic   = scale sum_j dS̃_ij k_jc: var = scale² (r sum_j dS_ij² k_jc² + var_Δi (sum_j P_ij k_jc)²)
//   dK_jc   = scale sum_i dS̃_ij q_ic: var = scale² sum_i (r dS_ij² + var_Δi P_ij²) q_ic²
// with r = kRoundingVariance u²; delta's error is one number per row, so it adds coherently
// over a row of dQ and independently over the rows in dK. GQA heads of a group add variances.
void attention_rounding_sigma(const AttentionArgs& a, double u, const double* q, const double* k,
                              const double* v, const double* dout, double* sigma_out,
                              double* sigma_dq, double* sigma_dk, double* sigma_dv, bool delta_term) {
  const RefGeom g = ref_geom(a);
  const double r = kRoundingVariance * u * u;
  const bool backward = sigma_dq || sigma_dk || sigma_dv;
  RT_CHECK(!backward || dout, "attention_rounding_sigma: the gradients' model needs dout");
  const int64_t nq = static_cast<int64_t>(a.b) * a.s_q * g.q_row;
  const int64_t nk = static_cast<int64_t>(a.b) * a.s_k * g.k_row;
  std::vector<double> var_out(static_cast<size_t>(nq), 0.0), var_dq(static_cast<size_t>(nq), 0.0);
  std::vector<double> var_dk(static_cast<size_t>(nk), 0.0), var_dv(static_cast<size_t>(nk), 0.0);
  std::vector<double> p, row_lse, o(static_cast<size_t>(a.d)), var_delta(static_cast<size_t>(a.s_q));
  std::vector<double> ds(static_cast<size_t>(a.s_q) * a.s_k), pk(static_cast<size_t>(a.d));
  for (int bi = 0; bi < a.b; ++bi)
    for (int hh = 0; hh < a.h; ++hh) {
      probs(a, g, q, k, bi, hh, p, row_lse);
      const int kv = hh / g.group;
      auto qi_of = [&](int i) { return (static_cast<int64_t>(bi) * a.s_q + i) * g.q_row + hh * a.d; };
      auto kj_of = [&](int j) { return (static_cast<int64_t>(bi) * a.s_k + j) * g.k_row + kv * a.d; };
      for (int i = 0; i < a.s_q; ++i) {
        const double* prow = p.data() + static_cast<int64_t>(i) * a.s_k;
        const int64_t qi = qi_of(i);
        for (int c = 0; c < a.d; ++c) o[static_cast<size_t>(c)] = 0.0;
        for (int j = 0; j < a.s_k; ++j) {
          if (prow[j] == 0.0) continue;
          const double* vj = v + kj_of(j);
          for (int c = 0; c < a.d; ++c) {
            o[static_cast<size_t>(c)] += prow[j] * vj[c];
            var_out[static_cast<size_t>(qi + c)] += r * prow[j] * prow[j] * vj[c] * vj[c];
          }
        }
        double delta = 0.0, vd = 0.0;
        for (int c = 0; c < a.d; ++c) {
          double& vo = var_out[static_cast<size_t>(qi + c)];
          vo += r * o[static_cast<size_t>(c)] * o[static_cast<size_t>(c)];
          if (backward) {
            delta += dout[qi + c] * o[static_cast<size_t>(c)];
            vd += dout[qi + c] * dout[qi + c] * vo;
          }
        }
        var_delta[static_cast<size_t>(i)] = delta_term ? vd : 0.0;
        if (!backward) continue;
        for (int j = 0; j < a.s_k; ++j) {
          double dp = 0.0;
          if (prow[j] != 0.0) {
            const double* vj = v + kj_of(j);
            for (int c = 0; c < a.d; ++c) dp += dout[qi + c] * vj[c];
          }
          ds[static_cast<size_t>(static_cast<int64_t>(i) * a.s_k + j)] = prow[j] * (dp - delta);
        }
      }
      if (!backward) continue;
      const double s2 = g.scale * g.scale;
      for (int i = 0; i < a.s_q; ++i) {
        const double* prow = p.data() + static_cast<int64_t>(i) * a.s_k;
        const double* dsrow = ds.data() + static_cast<int64_t>(i) * a.s_k;
        const int64_t qi = qi_of(i);
        for (int c = 0; c < a.d; ++c) pk[static_cast<size_t>(c)] = 0.0;
        for (int j = 0; j < a.s_k; ++j) {
          if (prow[j] == 0.0) continue;
          const int64_t kj = kj_of(j);
          for (int c = 0; c < a.d; ++c) {
            const double kc = k[kj + c], qc = q[qi + c], gc = dout[qi + c];
            var_dq[static_cast<size_t>(qi + c)] += s2 * r * dsrow[j] * dsrow[j] * kc * kc;
            pk[static_cast<size_t>(c)] += prow[j] * kc;
            var_dk[static_cast<size_t>(kj + c)] +=
                s2 * (r * dsrow[j] * dsrow[j] + var_delta[static_cast<size_t>(i)] * prow[j] * prow[j]) * qc * qc;
            var_dv[static_cast<size_t>(kj + c)] += r * prow[j] * prow[j] * gc * gc;
          }
        }
        for (int c = 0; c < a.d; ++c)
          var_dq[static_cast<size_t>(qi + c)] += s2 * var_delta[static_cast<size_t>(i)] * pk[static_cast<size_t>(c)] * pk[static_cast<size_t>(c)];
      }
    }
  auto out = [](const std::vector<double>& var, double* sigma) {
    if (sigma)
      for (size_t e = 0; e < var.size(); ++e) sigma[e] = std::sqrt(var[e]);
  };
  out(var_out, sigma_out);
  out(var_dq, sigma_dq);
  out(var_dk, sigma_dk);
  out(var_dv, sigma_dv);
}

}  // namespace ringtrain
