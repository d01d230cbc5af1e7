// Checks of checkpoint files in HDF5's old (1.0) format, from their raw bytes, before libhdf5
// is let near them.
#pragma once

#include <string>

namespace ringtrain::h5 {

// Checkpoints written before set_format_bounds (h5_util.h) use HDF5's 1.0 format, whose metadata has no
// checksums, and libhdf5 1.10.8 reads past its buffers (or loops forever) on some damaged
// metadata. Before such a file is opened, this checks, from the raw bytes, what libhdf5 would
// otherwise trust:
//   - every attribute message of the root group: name, type, space and data inside the message
//     (H5O__attr_decode copies nelmts x size bytes without looking at the message size);
//   - every variable-length string of those attributes: its global-heap collection walks to its
//     end in steps that make progress (H5HG's loader loops forever on a zero-size free block)
//     and holds the string with exactly its length (H5HG_read copies the object's own size);
//   - with `group_names`, every local heap (group member names) ends in a NUL inside its data
//     block (H5G__node_by_idx strdup()s a name from it without a bound), found by scanning the
//     whole file, so only listing (inspect, export) pays for it.
// Returns "" (fine, or not the old format: its metadata is checksummed) or what is wrong.
std::string legacy_problem(const std::string& path, bool group_names);

}  // namespace ringtrain::h5
