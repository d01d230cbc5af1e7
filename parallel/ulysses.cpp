#include "parallel/ulysses.h"

#include <cstring>
#include <vector>

#include "kernels/cpu/workspace.h"
#include "src/core/error.h"

namespace ringtrain {
namespace {

// The calling thread's all-to-all buffers, reused from call to call.
struct A2aBuffers {
  std::vector<float> send, recv;
};
A2aBuffers& a2a_buffers(size_t n) {
  thread_local A2aBuffers b;
  ws::ensure_size(b.send, n);
  ws::ensure_size(b.recv, n);
  return b;
}

}  // namespace

// All-to-all block j of the send buffer goes to member j. Both directions use blocks laid
// out as [b, s, h/u, d] (one member's tokens, one head slice), so the packing is a strided
// copy of rows of (h/u)*d floats.
void ulysses_to_frame(Communicator& g, int b, int s, int h, int d, const float* local, float* frame) {
  const int u = g.size();
  RT_CHECK(h % u == 0, "ulysses: ", h, " heads over ", u, " ranks");
  const int hs = h / u;
  const size_t row = static_cast<size_t>(hs) * d;
  const size_t block = static_cast<size_t>(b) * s * row;
  A2aBuffers& buf = a2a_buffers(block * u);
  std::vector<float>& send = buf.send;
  std::vector<float>& recv = buf.recv;
  for (int j = 0; j < u; ++j)
    for (int bi = 0; bi < b; ++bi)
      for (int t = 0; t < s; ++t)
        std::memcpy(&send[j * block + (static_cast<size_t>(bi) * s + t) * row],
                    local + ((static_cast<size_t>(bi) * s + t) * h + static_cast<size_t>(j) * hs) * d,
                    row * sizeof(float));
  g.all_to_all(send.data(), recv.data(), block, DType::kF32);
  const size_t S = static_cast<size_t>(u) * s;
  for (int i = 0; i < u; ++i)
    for (int bi = 0; bi < b; ++bi)
      for (int t = 0; t < s; ++t)
        std::memcpy(frame + (bi * S + static_cast<size_t>(i) * s + t) * row,
                    &recv[i * block + (static_cast<size_t>(bi) * s + t) * row], row * sizeof(float));
}

void ulysses_from_frame(Communicator& g, int b, int s, int h, int d, const float* frame, float* local) {
  const int u = g.size();
  RT_CHECK(h % u == 0, "ulysses: ", h, " heads over ", u, " ranks");
  const int hs = h / u;
  const size_t row = static_cast<size_t>(hs) * d;
  const size_t block = static_cast<size_t>(b) * s * row;
  const size_t S = static_cast<size_t>(u) * s;
  A2aBuffers& buf = a2a_buffers(block * u);
  std::vector<float>& send = buf.send;
  std::vector<float>& recv = buf.recv;
  for (int i = 0; i < u; ++i)
    for (int bi = 0; bi < b; ++bi)
      for (int t = 0; t < s; ++t)
        std::memcpy(&send[i * block + (static_cast<size_t>(bi) * s + t) * row],
                    frame + (bi * S + static_cast<size_t>(i) * s + t) * row, row * sizeof(float));
  g.all_to_all(send.data(), recv.data(), block, DType::kF32);
  for (int j = 0; j < u; ++j)
    for (int bi = 0; bi < b; ++bi)
      for (int t = 0; t < s; ++t)
        std::memcpy(local + ((static_cast<size_t>(bi) * s + t) * h + static_cast<size_t>(j) * hs) * d,
                    &recv[j * block + (static_cast<size_t>(bi) * s + t) * row], row * sizeof(float));
}

}  // namespace ringtrain
