#include "parallel/zigzag.h"

namespace ringtrain {

std::vector<int32_t> Zigzag::positions(int r) const {
  std::vector<int32_t> p(static_cast<size_t>(local_len()));
  for (int t = 0; t < local_len(); ++t) p[static_cast<size_t>(t)] = position(r, t);
  return p;
}

}  // namespace ringtrain
