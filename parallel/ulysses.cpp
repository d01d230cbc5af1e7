#include "parallel/ulysses.h"

#include "src/core/error.h"

namespace ringtrain {
namespace {
void size_buffers(const Backend& be, UlyssesBuffers& buf, int64_t n) {
  ensure_buffer(be, buf.send, n);
  ensure_buffer(be, buf.recv, n);
}
}  // namespace

// All-to-all block j goes to member j. Both directions use blocks laid out as [b, s, h/u, d]
// (one member's tokens, one head slice), so each packing is a swap of two outer dimensions
// with rows of (h/u)*d floats:
//   to_frame:   local [b*s][u][row] -> send [u][b*s][row];  recv [u][b][s*row] -> frame [b][u][s*row]
//   from_frame: frame [b][u][s*row] -> send [u][b][s*row];  recv [u][b*s][row] -> local [b*s][u][row]
void ulysses_to_frame(Communicator& g, Backend& be, UlyssesBuffers& buf, int b, int s, int h, int d, const float* local, float* frame) {
  const int u = g.size();
  RT_CHECK(h % u == 0, "ulysses: ", h, " heads over ", u, " ranks");
  const int64_t row = static_cast<int64_t>(h / u) * d;
  const int64_t block = static_cast<int64_t>(b) * s * row;
  size_buffers(be, buf, block * u);
  be.swap01(local, buf.send.f32(), static_cast<int64_t>(b) * s, u, row);
  g.all_to_all(buf.send.f32(), buf.recv.f32(), static_cast<size_t>(block), DType::kF32);
  be.swap01(buf.recv.f32(), frame, u, b, static_cast<int64_t>(s) * row);
}

void ulysses_from_frame(Communicator& g, Backend& be, UlyssesBuffers& buf, int b, int s, int h, int d, const float* frame, float* local) {
  const int u = g.size();
  RT_CHECK(h % u == 0, "ulysses: ", h, " heads over ", u, " ranks");
  const int64_t row = static_cast<int64_t>(h / u) * d;
  const int64_t block = static_cast<int64_t>(b) * s * row;
  size_buffers(be, buf, block * u);
  be.swap01(frame, buf.send.f32(), b, u, static_cast<int64_t>(s) * row);
  g.all_to_all(buf.send.f32(), buf.recv.f32(), static_cast<size_t>(block), DType::kF32);
  be.swap01(buf.recv.f32(), local, u, static_cast<int64_t>(b) * s, row);
}

}  // namespace ringtrain
