// Collective HDF5 writes and resharding reads of checkpoints (format in checkpoint.h).
//
// Parallel HDF5 applies filters (our Fletcher32 checksum) on writes only with collective
// transfers to chunked datasets: every rank calls H5Dwrite for every dataset, ranks that own
// nothing select nothing. Reads are independent: each rank reads its own hyperslabs, so a
// checksum failure seen by one rank cannot leave the others waiting inside a collective read;
// the ranks agree on the outcome afterwards with one all-reduce.
#include "src/checkpoint/checkpoint.h"

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <variant>

#include "parallel/mesh.h"
#include "src/checkpoint/h5_legacy.h"
#include "src/checkpoint/h5_util.h"
#include "src/core/error.h"
#include "src/core/process.h"
#include "src/model/params.h"

namespace ringtrain {
namespace {

using h5::Handle;

constexpr const char* kFormatName = "ringtrain-checkpoint";
constexpr hsize_t kChunkElems = hsize_t{1} << 18;  // 1 MiB of fp32 per chunk

// A box of the global tensor: start and count per dimension (rank 1 or 2).
struct Block {
  hsize_t start[2] = {0, 0};
  hsize_t count[2] = {0, 0};
};

// Elements [b, e) of a parameter's local tensor (row-major in its local shape) as boxes of the
// global tensor, in the same order: a partial first row, whole rows, a partial last row.
// A local row maps to one global row, its columns to a contiguous run of global columns, so
// the global row-major order of the union equals the local order.
std::vector<Block> global_blocks(const Param& p, int64_t b, int64_t e) {
  std::vector<Block> out;
  if (b >= e) return out;
  const ParamInfo& info = p.info;
  const int nd = static_cast<int>(p.local_shape.size());
  if (nd == 1) {
    Block k;
    k.start[0] = static_cast<hsize_t>(b + (info.shard_dim == 0 ? info.shard_offset : 0));
    k.count[0] = static_cast<hsize_t>(e - b);
    out.push_back(k);
    return out;
  }
  RT_CHECK(nd == 2, "checkpoint: parameter ", info.name, " has rank ", nd);
  const int64_t cols = p.local_shape[1];
  const int64_t row_off = info.shard_dim == 0 ? info.shard_offset : 0;
  const int64_t col_off = info.shard_dim == 1 ? info.shard_offset : 0;
  auto add = [&](int64_t r, int64_t nr, int64_t c, int64_t nc) {
    if (nr <= 0 || nc <= 0) return;
    Block k;
    k.start[0] = static_cast<hsize_t>(r + row_off);
    k.start[1] = static_cast<hsize_t>(c + col_off);
    k.count[0] = static_cast<hsize_t>(nr);
    k.count[1] = static_cast<hsize_t>(nc);
    out.push_back(k);
  };
  int64_t r0 = b / cols, c0 = b % cols;
  const int64_t r1 = e / cols, c1 = e % cols;
  if (r0 == r1) {
    add(r0, 1, c0, c1 - c0);
    return out;
  }
  if (c0 > 0) {
    add(r0, 1, c0, cols - c0);
    ++r0;
  }
  add(r0, r1 - r0, 0, cols);
  add(r1, 1, 0, c1);
  return out;
}

void select_blocks(hid_t space, const std::vector<Block>& blocks) {
  if (blocks.empty()) {
    H5_CHECK(H5Sselect_none(space));
    return;
  }
  for (size_t i = 0; i < blocks.size(); ++i)
    H5_CHECK(H5Sselect_hyperslab(space, i == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, blocks[i].start,
                                 nullptr, blocks[i].count, nullptr));
}

// Local elements [b, e) of one parameter (possibly empty) and their boxes in the global tensor.
struct Piece {
  const Param* p = nullptr;
  int64_t b = 0, e = 0;
  std::vector<Block> blocks;
};

Piece piece(const Param& p, int64_t b, int64_t e) {
  Piece x;
  x.p = &p;
  x.b = b;
  x.e = std::max(b, e);
  x.blocks = global_blocks(p, b, e);
  return x;
}

// The memory side of a transfer. HDF5 maps file and memory selections chunk by chunk quickly
// only when both have the same shape; a 1-D memory space against a 2-D file selection falls
// back to element-by-element mapping (several times slower). So one box gets a memory space of
// its own shape, and several boxes (a ZeRO-1 slice starting or ending mid-row) go through a
// staging buffer shaped like the local rows they touch, with the same boxes selected in it.
struct MemPlan {
  Handle space;
  int64_t stage_off = 0;  // position of element b in the staging buffer
  int64_t stage_len = 0;  // 0: transfer straight from/to the caller's contiguous buffer
};

MemPlan mem_plan(const Piece& x) {
  MemPlan m;
  const int nd = static_cast<int>(x.p->local_shape.size());
  if (x.blocks.empty()) {
    const hsize_t one = 1;
    m.space = Handle(H5_CHECK(H5Screate_simple(1, &one, nullptr)));
    H5_CHECK(H5Sselect_none(m.space));
    return m;
  }
  if (x.blocks.size() == 1) {
    m.space = Handle(H5_CHECK(H5Screate_simple(nd, x.blocks[0].count, nullptr)));
    return m;
  }
  const ParamInfo& info = x.p->info;
  const int64_t cols = x.p->local_shape[1];
  const int64_t r0 = x.b / cols, r1 = (x.e - 1) / cols;
  const hsize_t dims[2] = {static_cast<hsize_t>(r1 - r0 + 1), static_cast<hsize_t>(cols)};
  m.space = Handle(H5_CHECK(H5Screate_simple(2, dims, nullptr)));
  const int64_t row_off = r0 + (info.shard_dim == 0 ? info.shard_offset : 0);
  const int64_t col_off = info.shard_dim == 1 ? info.shard_offset : 0;
  std::vector<Block> local = x.blocks;
  for (Block& k : local) {
    k.start[0] -= static_cast<hsize_t>(row_off);
    k.start[1] -= static_cast<hsize_t>(col_off);
  }
  select_blocks(m.space, local);
  m.stage_off = x.b % cols;
  m.stage_len = static_cast<int64_t>(dims[0] * dims[1]);
  return m;
}

// ---- attributes -------------------------------------------------------------------------

void put_attr_i64(hid_t obj, const char* name, int64_t v) {
  Handle space(H5_CHECK(H5Screate(H5S_SCALAR)));
  Handle a(H5_CHECK(H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)));
  H5_CHECK(H5Awrite(a, H5T_NATIVE_INT64, &v));
}

void put_attr_f64(hid_t obj, const char* name, double v) {
  Handle space(H5_CHECK(H5Screate(H5S_SCALAR)));
  Handle a(H5_CHECK(H5Acreate2(obj, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT)));
  H5_CHECK(H5Awrite(a, H5T_NATIVE_DOUBLE, &v));
}

// String attributes: fixed-length when written, bounded when read (h5_util.h).
using h5::get_attr_str;
using h5::put_attr_str;

// Attribute readers for files that may be damaged or foreign: problems are input errors.
int64_t get_attr_i64(hid_t obj, const char* name, const std::string& file) {
  if (H5Aexists(obj, name) <= 0) input_error("checkpoint ", file, ": attribute '", name, "' is missing");
  Handle a(H5Aopen(obj, name, H5P_DEFAULT));
  int64_t v = 0;
  if (!a.valid() || !h5::single_element(a) || H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
    input_error("checkpoint ", file, ": attribute '", name, "' is not an integer (", h5::error_stack(), ")");
  return v;
}

double get_attr_f64(hid_t obj, const char* name, const std::string& file) {
  if (H5Aexists(obj, name) <= 0) input_error("checkpoint ", file, ": attribute '", name, "' is missing");
  Handle a(H5Aopen(obj, name, H5P_DEFAULT));
  double v = 0;
  if (!a.valid() || !h5::single_element(a) || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
    input_error("checkpoint ", file, ": attribute '", name, "' is not a number (", h5::error_stack(), ")");
  return v;
}

// The root group's attributes after format and format_version: one list for writing and
// reading, each bound to its CheckpointHeader field (the field's type picks the HDF5 type).
struct HeaderAttr {
  const char* name;
  std::variant<int CheckpointHeader::*, int64_t CheckpointHeader::*, uint64_t CheckpointHeader::*,
               bool CheckpointHeader::*, double CheckpointHeader::*, std::string CheckpointHeader::*>
      field;
};
const HeaderAttr kHeaderAttrs[] = {
    {"step", &CheckpointHeader::step},
    {"tokens_seen", &CheckpointHeader::tokens_seen},
    {"data_position", &CheckpointHeader::data_position},
    {"lr", &CheckpointHeader::lr},
    {"seed", &CheckpointHeader::seed},
    {"mesh_dp", &CheckpointHeader::mesh_dp},
    {"mesh_cp", &CheckpointHeader::mesh_cp},
    {"mesh_tp", &CheckpointHeader::mesh_tp},
    {"mesh_ulysses", &CheckpointHeader::mesh_ulysses},
    {"mesh_cp_mode", &CheckpointHeader::mesh_cp_mode},
    {"mesh_zero1", &CheckpointHeader::mesh_zero1},
    {"model_vocab_size", &CheckpointHeader::vocab_size},
    {"model_d_model", &CheckpointHeader::d_model},
    {"model_n_layers", &CheckpointHeader::n_layers},
    {"model_n_heads", &CheckpointHeader::n_heads},
    {"model_n_kv_heads", &CheckpointHeader::n_kv_heads},
    {"model_d_ff", &CheckpointHeader::d_ff},
    {"model_tie_embeddings", &CheckpointHeader::tie_embeddings},
    {"config", &CheckpointHeader::config_yaml},
};

void write_attr(hid_t obj, const char* name, const std::string& v) { put_attr_str(obj, name, v); }
void write_attr(hid_t obj, const char* name, double v) { put_attr_f64(obj, name, v); }
template <typename T>
void write_attr(hid_t obj, const char* name, T v) {
  put_attr_i64(obj, name, static_cast<int64_t>(v));
}

void read_attr(hid_t obj, const char* name, const std::string& file, std::string& v) {
  v = get_attr_str(obj, name, file);
}
void read_attr(hid_t obj, const char* name, const std::string& file, double& v) { v = get_attr_f64(obj, name, file); }
void read_attr(hid_t obj, const char* name, const std::string& file, bool& v) {
  v = get_attr_i64(obj, name, file) != 0;
}
template <typename T>
void read_attr(hid_t obj, const char* name, const std::string& file, T& v) {
  v = static_cast<T>(get_attr_i64(obj, name, file));
}

// What a save records about itself.
CheckpointHeader header_for(const Config& config, const MeshShape& shape, const CheckpointState& state) {
  const ModelConfig& m = config.model;
  CheckpointHeader h;
  h.version = kCheckpointFormatVersion;
  h.step = state.step;
  h.tokens_seen = state.tokens_seen;
  h.data_position = state.step;
  h.lr = state.lr;
  h.seed = config.run.seed;
  h.mesh_dp = shape.dp;
  h.mesh_cp = shape.cp;
  h.mesh_tp = shape.tp;
  h.mesh_ulysses = shape.ulysses;
  h.mesh_cp_mode = to_string(config.parallel.cp_mode);
  h.mesh_zero1 = config.parallel.zero1 && shape.dp > 1;
  h.vocab_size = m.vocab_size;
  h.d_model = m.d_model;
  h.n_layers = m.n_layers;
  h.n_heads = m.n_heads;
  h.n_kv_heads = m.n_kv_heads;
  h.d_ff = m.ffn_dim();
  h.tie_embeddings = m.tie_embeddings;
  h.config_yaml = dump_config(config);
  return h;
}

// ---- datasets ---------------------------------------------------------------------------

// Chunks of at most kChunkElems (1 MiB): HDF5 stores edge chunks whole, so 768 rows in
// chunks of 341 would waste a third of a chunk, 3 x 256 nothing. Along the dimension split
// over tp the chunk divides the writer's shard when it can, so each chunk has one writer:
// parallel HDF5 must otherwise ship the pieces of a shared filtered chunk to one owner.
hsize_t balanced(hsize_t n, hsize_t most) {
  most = std::max<hsize_t>(1, std::min(n, most));
  const hsize_t pieces = (n + most - 1) / most;
  return std::max<hsize_t>(1, (n + pieces - 1) / pieces);
}

hsize_t aligned(hsize_t n, hsize_t shard, hsize_t most) {
  most = std::max<hsize_t>(1, most);
  if (shard == 0 || shard > n || n % shard != 0) return balanced(n, most);
  hsize_t best = 1;
  for (hsize_t d = std::min(shard, most); d >= 1; --d)
    if (shard % d == 0) {
      best = d;
      break;
    }
  return best * 2 >= std::min(shard, most) ? best : balanced(n, most);
}

void chunk_dims(const Shape& shape, int shard_dim, int64_t shard_size, hsize_t* chunk) {
  const hsize_t ss = static_cast<hsize_t>(std::max<int64_t>(shard_size, 0));
  if (shape.size() == 1) {
    chunk[0] = shard_dim == 0 ? aligned(static_cast<hsize_t>(shape[0]), ss, kChunkElems)
                              : balanced(static_cast<hsize_t>(shape[0]), kChunkElems);
    return;
  }
  const hsize_t rows = static_cast<hsize_t>(shape[0]), cols = static_cast<hsize_t>(shape[1]);
  chunk[1] = shard_dim == 1 ? aligned(cols, ss, kChunkElems) : balanced(cols, kChunkElems);
  const hsize_t most_rows = std::max<hsize_t>(1, kChunkElems / chunk[1]);
  chunk[0] = shard_dim == 0 ? aligned(rows, ss, most_rows) : balanced(rows, most_rows);
}

// Collective: creates `name` (the parameter's global shape) and writes this rank's piece of it
// from `data` (its elements [b, e), contiguous). Ranks with an empty piece select nothing.
void write_dataset(hid_t file, const std::string& name, const Piece& x, const float* data, hid_t dxpl) {
  const ParamInfo& info = x.p->info;
  const Shape& shape = info.global_shape;
  const int nd = static_cast<int>(shape.size());
  hsize_t dims[2] = {0, 0}, chunk[2] = {1, 1};
  for (int i = 0; i < nd; ++i) dims[i] = static_cast<hsize_t>(shape[static_cast<size_t>(i)]);
  chunk_dims(shape, info.shard_dim, info.shard_size, chunk);
  Handle space(H5_CHECK(H5Screate_simple(nd, dims, nullptr)));
  Handle dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
  H5_CHECK(H5Pset_chunk(dcpl, nd, chunk));
  H5_CHECK(H5Pset_fletcher32(dcpl));
  H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER));
  Handle dset(H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!dset.valid()) fault("checkpoint: cannot create dataset ", name, ": ", h5::error_stack());
  Handle fspace(H5_CHECK(H5Dget_space(dset)));
  select_blocks(fspace, x.blocks);
  const MemPlan m = mem_plan(x);
  std::vector<float> stage;
  const float dummy = 0.0f;
  const float* src = x.blocks.empty() ? &dummy : data;
  if (m.stage_len > 0) {
    stage.assign(static_cast<size_t>(m.stage_len), 0.0f);
    std::copy(data, data + (x.e - x.b), stage.begin() + m.stage_off);
    src = stage.data();
  }
  if (H5Dwrite(dset, H5T_NATIVE_FLOAT, m.space, fspace, dxpl, src) < 0)
    fault("checkpoint: writing dataset ", name, " failed: ", h5::error_stack());
}

// Independent: reads this rank's piece of `name` into `out` (elements [b, e), contiguous).
// Returns "" or what went wrong.
std::string read_piece(hid_t file, const std::string& name, const std::string& path, const Piece& x, float* out) {
  if (x.blocks.empty()) return "";
  Handle dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  if (!dset.valid()) return "checkpoint " + path + ": cannot open dataset " + name + " (" + h5::error_stack() + ")";
  Handle fspace(H5_CHECK(H5Dget_space(dset)));
  select_blocks(fspace, x.blocks);
  const MemPlan m = mem_plan(x);
  std::vector<float> stage(static_cast<size_t>(m.stage_len));
  if (H5Dread(dset, H5T_NATIVE_FLOAT, m.space, fspace, H5P_DEFAULT, m.stage_len > 0 ? stage.data() : out) < 0) {
    const bool checksum = h5::stack_has_checksum_error();
    const std::string detail = h5::error_stack();
    if (checksum) return "checksum error in dataset " + name + " of " + path + " (the file is corrupted)";
    return "checkpoint " + path + ": cannot read dataset " + name + " (" + detail + ")";
  }
  if (m.stage_len > 0) std::copy(stage.begin() + m.stage_off, stage.begin() + m.stage_off + (x.e - x.b), out);
  return "";
}

// Serial metadata check of one dataset: present, fp32, the expected shape. "" when fine.
std::string dataset_problem(hid_t file, const std::string& name, const Shape& shape, const std::string& path) {
  // H5Lexists fails (rather than returning 0) when an intermediate group is missing.
  const auto slash = name.rfind('/');
  if (slash != std::string::npos && H5Lexists(file, name.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return "checkpoint " + path + ": group " + name.substr(0, slash) + " is missing (needed for " + name + ")";
  }
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return "checkpoint " + path + ": tensor " + name + " is missing";
  }
  Handle dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  if (!dset.valid()) return "checkpoint " + path + ": " + name + " is not a readable dataset (" + h5::error_stack() + ")";
  Handle type(H5_CHECK(H5Dget_type(dset)));
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 4) {
    const char* cls = H5Tget_class(type) == H5T_INTEGER ? "integer" : H5Tget_class(type) == H5T_FLOAT ? "float" : "non-numeric";
    return "checkpoint " + path + ": tensor " + name + " has dtype " + cls + std::to_string(8 * H5Tget_size(type)) +
           ", expected float32";
  }
  Handle space(H5_CHECK(H5Dget_space(dset)));
  const int nd = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
  if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  std::vector<int64_t> got(dims.begin(), dims.end());
  if (const std::string layout = h5::layout_problem(dset); !layout.empty())
    return "checkpoint " + path + ": tensor " + name + ": " + layout;
  if (got != shape)
    return "checkpoint " + path + ": shape mismatch for tensor " + name + ": the file has " + shape_str(got) +
           ", the model needs " + shape_str(shape);
  return "";
}

Handle open_serial(const std::string& path, bool group_names = false) {
  h5::quiet();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) input_error("checkpoint ", path, " does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    input_error("checkpoint ", path, " is not an HDF5 file (truncated or damaged?)");
  }
  const std::string legacy = h5::legacy_problem(path, group_names);
  if (!legacy.empty()) input_error(legacy);
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, h5::read_access()));
  if (!f.valid())
    input_error("checkpoint ", path, " cannot be opened (truncated or damaged?): ", h5::error_stack());
  return f;
}

CheckpointHeader header_of(hid_t f, const std::string& path) {
  CheckpointHeader h;
  if (const std::string why = h5::attribute_storage_problem(f); !why.empty())
    input_error("checkpoint ", path, " cannot be read: ", why);
  const htri_t has_format = H5Aexists(f, "format");
  if (has_format < 0) input_error("checkpoint ", path, " is damaged: its attributes cannot be read (", h5::error_stack(), ")");
  const std::string format = has_format > 0 ? get_attr_str(f, "format", path) : "";
  if (format != kFormatName)
    input_error("checkpoint ", path, " is not a ringtrain checkpoint (root attribute format = '", format,
                "', expected '", kFormatName, "')");
  h.version = static_cast<int>(get_attr_i64(f, "format_version", path));
  if (h.version != kCheckpointFormatVersion)
    input_error("checkpoint ", path, " has format version ", h.version, "; this build reads version ",
                kCheckpointFormatVersion);
  for (const HeaderAttr& a : kHeaderAttrs) std::visit([&](auto field) { read_attr(f, a.name, path, h.*field); }, a.field);
  if (h.step < 0 || h.tokens_seen < 0) input_error("checkpoint ", path, ": negative step or tokens_seen");
  return h;
}

// Everything a load checks before reading data, on one process. "" when loadable.
std::string load_problem(const std::string& path, const Config& config, const ParamStore& params, bool optimizer,
                         CheckpointHeader* header) {
  try {
    Handle f = open_serial(path);
    *header = header_of(f, path);
    const CheckpointHeader& h = *header;
    const ModelConfig& m = config.model;
    std::string diff;
    auto cmp = [&](const char* key, long long file, long long cfg) {
      if (file != cfg)
        diff += std::string(diff.empty() ? "" : "; ") + "model." + key + " is " + std::to_string(file) +
                " in the checkpoint but " + std::to_string(cfg) + " in the config";
    };
    cmp("vocab_size", h.vocab_size, m.vocab_size);
    cmp("d_model", h.d_model, m.d_model);
    cmp("n_layers", h.n_layers, m.n_layers);
    cmp("n_heads", h.n_heads, m.n_heads);
    cmp("n_kv_heads", h.n_kv_heads, m.n_kv_heads);
    cmp("d_ff (resolved)", h.d_ff, m.ffn_dim());
    cmp("tie_embeddings", h.tie_embeddings, m.tie_embeddings);
    if (!diff.empty()) return "checkpoint " + path + " was written for a different model: " + diff;
    for (const Param& p : params.params()) {
      std::string why = dataset_problem(f, "model/" + p.info.name, p.info.global_shape, path);
      if (why.empty() && optimizer) why = dataset_problem(f, "optimizer/exp_avg/" + p.info.name, p.info.global_shape, path);
      if (why.empty() && optimizer)
        why = dataset_problem(f, "optimizer/exp_avg_sq/" + p.info.name, p.info.global_shape, path);
      if (!why.empty()) return why;
    }
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void bcast_string(std::string* s, int root, MPI_Comm comm) {
  long long n = static_cast<long long>(s->size());
  MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, root, comm));
  s->resize(static_cast<size_t>(n));
  if (n > 0) MPI_CHECK(MPI_Bcast(s->data(), static_cast<int>(n), MPI_CHAR, root, comm));
}

}  // namespace

void write_checkpoint_file(const std::string& path, const Config& config, Mesh& mesh, const ParamStore& params,
                           const MomentsView& moments, const CheckpointState& state) {
  h5::quiet();
  params.pull_values();  // device -> the host copies written below
  const std::string partial = path + ".partial";
  const MeshCoord& at = mesh.coord();
  const MeshShape& shape = mesh.shape();
  errno = 0;
  try {
    Handle fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
    H5_CHECK(H5Pset_fapl_mpio(fapl, mesh.world_comm(), MPI_INFO_NULL));
    h5::set_format_bounds(fapl);
    Handle file(H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, h5::file_create_plist(), fapl));
    if (!file.valid()) fault("checkpoint: cannot create ", partial, ": ", h5::error_stack());

    put_attr_str(file, "format", kFormatName);
    put_attr_i64(file, "format_version", kCheckpointFormatVersion);
    const CheckpointHeader h = header_for(config, shape, state);
    for (const HeaderAttr& a : kHeaderAttrs) std::visit([&](auto field) { write_attr(file, a.name, h.*field); }, a.field);
    for (const char* g : {"model", "optimizer", "optimizer/exp_avg", "optimizer/exp_avg_sq"})
      Handle(H5_CHECK(H5Gcreate2(file, g, H5P_DEFAULT, h5::group_create_plist(), H5P_DEFAULT)));

    Handle dxpl(H5_CHECK(H5Pcreate(H5P_DATASET_XFER)));
    H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
    const bool zero1 = config.parallel.zero1 && shape.dp > 1;
    const int64_t lo = moments.begin, hi = lo + moments.size;
    for (const Param& p : params.params()) {
      const bool tp_owner = p.info.shard_dim >= 0 || at.tp == 0;
      const bool writer = tp_owner && at.dp == 0 && at.cp == 0;
      write_dataset(file, "model/" + p.info.name, piece(p, 0, writer ? p.numel : 0), params.host_values() + p.offset, dxpl);
      // Moments: the flat slice [lo, hi) of this rank (everything without ZeRO-1).
      const int64_t b = std::max(lo, p.offset), e = std::min(hi, p.offset + p.numel);
      const bool moment_writer = tp_owner && at.cp == 0 && (zero1 || at.dp == 0) && b < e;
      const Piece mine = moment_writer ? piece(p, b - p.offset, e - p.offset) : piece(p, 0, 0);
      const size_t off = moment_writer ? static_cast<size_t>(b - lo) : 0;
      write_dataset(file, "optimizer/exp_avg/" + p.info.name, mine, moments.exp_avg + off, dxpl);
      write_dataset(file, "optimizer/exp_avg_sq/" + p.info.name, mine, moments.exp_avg_sq + off, dxpl);
    }
    H5_CHECK(H5Fflush(file, H5F_SCOPE_GLOBAL));
  } catch (const Error& e) {  // the handles above are closed by now (collective close)
    if (e.kind() != ErrorKind::kFault) throw;
    const int saved_errno = errno;
    int64_t elems = 0;
    for (const Param& p : params.params()) elems += shape_numel(p.info.global_shape);
    h5::write_failed(partial, static_cast<uint64_t>(elems) * 12 * 101 / 100 + (uint64_t{1} << 20), saved_errno, e.what());
  }
  MPI_CHECK(MPI_Barrier(mesh.world_comm()));
  if (mesh.rank() == 0) {
    std::error_code ec;
    std::filesystem::rename(partial, path, ec);
    if (ec) fault("checkpoint: cannot rename ", partial, " to ", path, ": ", ec.message());
  }
  MPI_CHECK(MPI_Barrier(mesh.world_comm()));
}

CheckpointState read_checkpoint_file(const std::string& path, const Config& config, Mesh& mesh, ParamStore& params,
                                     const MomentsView* moments) {
  h5::quiet();
  const MPI_Comm comm = mesh.world_comm();
  CheckpointHeader header;
  std::string problem;
  if (mesh.rank() == 0) problem = load_problem(path, config, params, moments != nullptr, &header);
  bcast_string(&problem, 0, comm);
  if (!problem.empty()) collective_input_error(problem);
  if (mesh.rank() == 0 && moments && header.seed != config.run.seed)
    warn("resuming " + path + " (trained with run.seed " + std::to_string(header.seed) + ") with run.seed " +
         std::to_string(config.run.seed) + ": the data from here on differs from the original run's");
  long long hv[2] = {header.step, header.tokens_seen};
  double lr = header.lr;
  MPI_CHECK(MPI_Bcast(hv, 2, MPI_LONG_LONG, 0, comm));
  MPI_CHECK(MPI_Bcast(&lr, 1, MPI_DOUBLE, 0, comm));

  // Every rank reads its own hyperslabs, independently, through HDF5's default (POSIX) driver:
  // reads need no coordination, and a rank that fails (a checksum, a file this node cannot
  // see) cannot leave the others inside a collective open or close.
  std::string error;
  {
    Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, h5::read_access()));
    if (!file.valid())
      error = "checkpoint " + path + " cannot be opened on rank " + std::to_string(mesh.rank()) + ": " + h5::error_stack();
    const int64_t lo = moments ? moments->begin : 0;
    const int64_t hi = moments ? lo + moments->size : 0;
    for (const Param& p : params.params()) {
      if (!error.empty()) break;
      error = read_piece(file, "model/" + p.info.name, path, piece(p, 0, p.numel), params.host_values() + p.offset);
      if (!error.empty() || !moments) continue;
      const int64_t b = std::max(lo, p.offset), e = std::min(hi, p.offset + p.numel);
      if (b >= e) continue;
      const Piece mine = piece(p, b - p.offset, e - p.offset);
      error = read_piece(file, "optimizer/exp_avg/" + p.info.name, path, mine, moments->exp_avg + (b - lo));
      if (error.empty())
        error = read_piece(file, "optimizer/exp_avg_sq/" + p.info.name, path, mine,
                           moments->exp_avg_sq + (b - lo));
    }
  }
  // Agree: the lowest rank that saw a problem tells everyone.
  int bad = error.empty() ? mesh.size() : mesh.rank();
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MIN, comm));
  if (bad < mesh.size()) {
    bcast_string(&error, bad, comm);
    collective_input_error(error);
  }
  params.push_values();  // the host copies read above -> the device
  CheckpointState s;
  s.step = hv[0];
  s.tokens_seen = hv[1];
  s.lr = lr;
  return s;
}

CheckpointHeader read_checkpoint_header(const std::string& path) {
  Handle f = open_serial(path);
  return header_of(f, path);
}

std::string checkpoint_problem(const std::string& path) {
  try {
    read_checkpoint_header(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> checkpoint_tensor_names(const std::string& path, const std::string& group) {
  Handle f = open_serial(path, /*group_names=*/true);
  if (H5Lexists(f, group.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return {};
  }
  Handle g(H5Gopen2(f, group.c_str(), H5P_DEFAULT));
  if (!g.valid()) input_error("checkpoint ", path, ": ", group, " is not a group");
  H5G_info_t info;
  // A damaged group (found by tests/fuzz/fuzz_checkpoint.cpp) is bad input, not a fault.
  if (H5Gget_info(g, &info) < 0)
    input_error("checkpoint ", path, ": cannot list ", group, " (", h5::error_stack(), ")");
  if (const std::string why = h5::group_storage_problem(g); !why.empty())
    input_error("checkpoint ", path, ": cannot list ", group, ": ", why);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) continue;
    std::string s(static_cast<size_t>(n) + 1, '\0');
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), s.size(), H5P_DEFAULT);
    s.resize(static_cast<size_t>(n));
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, s.c_str(), &oi, H5P_DEFAULT) >= 0 && oi.type == H5O_TYPE_DATASET) names.push_back(s);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<int64_t> checkpoint_tensor_shape(const std::string& path, const std::string& dataset) {
  Handle f = open_serial(path);
  Handle dset(H5Dopen2(f, dataset.c_str(), H5P_DEFAULT));
  if (!dset.valid()) input_error("checkpoint ", path, ": tensor ", dataset, " is missing");
  Handle space(H5_CHECK(H5Dget_space(dset)));
  const int nd = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
  if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

std::vector<float> read_checkpoint_tensor(const std::string& path, const std::string& dataset,
                                          std::vector<int64_t>* shape) {
  Handle f = open_serial(path);
  Handle dset(H5Dopen2(f, dataset.c_str(), H5P_DEFAULT));
  if (!dset.valid()) input_error("checkpoint ", path, ": tensor ", dataset, " is missing");
  Handle type(H5_CHECK(H5Dget_type(dset)));
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 4)
    input_error("checkpoint ", path, ": tensor ", dataset, " is not a float32 dataset");
  const std::string layout = h5::layout_problem(dset);
  if (!layout.empty()) input_error("checkpoint ", path, ": tensor ", dataset, ": ", layout);
  Handle space(H5_CHECK(H5Dget_space(dset)));
  const int nd = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(nd, 0)));
  if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  shape->assign(dims.begin(), dims.end());
  // fp32 chunks are stored uncompressed, so a tensor larger than its file is a damaged header
  // (found by tests/fuzz/fuzz_checkpoint.cpp: a 2^61-element shape), not a reason to allocate.
  std::error_code size_ec;
  const uint64_t file_bytes = std::filesystem::file_size(path, size_ec);
  size_t n = 1;
  for (hsize_t d : dims) {
    if (d != 0 && n > (size_ec ? SIZE_MAX / sizeof(float) : file_bytes / sizeof(float)) / d)
      input_error("checkpoint ", path, ": tensor ", dataset, " claims a shape larger than the file (the file is damaged)");
    n *= static_cast<size_t>(d);
  }
  std::vector<float> out(n);
  if (n > 0 && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    const bool checksum = h5::stack_has_checksum_error();
    const std::string detail = h5::error_stack();
    if (checksum) input_error("checksum error in dataset ", dataset, " of ", path, " (the file is corrupted)");
    input_error("checkpoint ", path, ": cannot read dataset ", dataset, " (", detail, ")");
  }
  return out;
}

}  // namespace ringtrain
