#include <algorithm>
#include <cmath>
#include <random>

#include "bench/attention/attention_bench.h"
#include "kernels/attention_reference.h"

namespace ringtrain::bench {


AttentionArgs make_args(int b, int s, int h, int h_kv, int d, bool causal) {
  AttentionArgs a;
  a.b = b;
  a.s_q = a.s_k = s;
  a.h = h;
  a.h_kv = h_kv;
  a.d = d;
  a.causal = causal;
  return a;
}

double max_error(const AttentionArgs& a, const std::vector<float>& q, const std::vector<float>& k,
                 const std::vector<float>& v, const std::vector<float>& out, const std::vector<int>& rows) {
  const int hd = a.h * a.d;
  const size_t kv = static_cast<size_t>(a.s_k) * a.h_kv * a.d;
  std::vector<double> kd(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(kv));
  std::vector<double> vd(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(kv));
  double err = 0.0;
  for (int row : rows) {
    AttentionArgs ar = a;
    ar.b = 1;
    ar.s_q = 1;
    int32_t qp = row;
    ar.q_pos = &qp;
    if (a.q_doc) ar.q_doc = a.q_doc + row;
    std::vector<double> qd(q.begin() + static_cast<std::ptrdiff_t>(row) * hd,
                           q.begin() + static_cast<std::ptrdiff_t>(row + 1) * hd);
    std::vector<double> o(static_cast<size_t>(hd));
    ringtrain::attention_reference_forward(ar, qd.data(), kd.data(), vd.data(), o.data(), nullptr);
    for (size_t c = 0; c < o.size(); ++c)
      err = std::max(err, std::fabs(o[c] - out[static_cast<size_t>(row) * hd + c]));
  }
  return err;
}

Inputs::Inputs(const AttentionArgs& a, unsigned seed) {
  const size_t n = static_cast<size_t>(a.b) * a.s_q * a.h * a.d;
  const size_t nkv = static_cast<size_t>(a.b) * a.s_k * a.h_kv * a.d;
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  q.resize(n);
  dout.resize(n);
  k.resize(nkv);
  v.resize(nkv);
  for (auto* x : {&q, &k, &v, &dout})
    for (auto& e : *x) e = nd(gen);
}

}  // namespace ringtrain::bench
