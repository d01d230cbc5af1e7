#include "src/checkpoint/h5_util.h"

#include <cstring>

namespace ringtrain::h5 {

void quiet() {
  static bool done = false;
  if (done) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  done = true;
}

namespace {

struct StackText {
  std::string text;
  bool checksum = false;
};

herr_t walk(unsigned n, const H5E_error2_t* e, void* data) {
  auto* s = static_cast<StackText*>(data);
  const char* desc = e->desc ? e->desc : "";
  if (std::strstr(desc, "Fletcher32") || std::strstr(desc, "checksum")) s->checksum = true;
  if (n > 0) s->text += "; ";
  s->text += (e->func_name ? e->func_name : "?");
  s->text += ": ";
  s->text += desc;
  return 0;
}

StackText walk_stack() {
  StackText s;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &s);
  return s;
}

}  // namespace

std::string error_stack() {
  StackText s = walk_stack();
  H5Eclear2(H5E_DEFAULT);
  return s.text.empty() ? "no HDF5 error message" : s.text;
}

bool stack_has_checksum_error() { return walk_stack().checksum; }

void call_failed(const char* call, const char* file, int line) {
  fault("HDF5 call ", call, " failed: ", error_stack(), " (", file, ":", line, ")");
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = -1;
}

}  // namespace ringtrain::h5
