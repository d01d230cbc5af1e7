// Tools on a checkpoint file, run by one process: `ringtrain inspect` and `ringtrain export`.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace ringtrain {

// Prints the header (step, tokens, lr, seed, data position, writer's mesh, model), the stored
// config and every tensor with dtype, shape, sum and CRC-32 of its little-endian fp32 bytes.
// Reading every tensor verifies every checksum.
void inspect_checkpoint(const std::string& path, std::ostream& out);

// Writes OUT_DIR/model.safetensors (the weights under their Hugging Face names, F32) and
// OUT_DIR/config.json for transformers' LlamaForCausalLM.
void export_checkpoint(const std::string& path, const std::string& out_dir, std::ostream& log);

// CRC-32 (IEEE 802.3, as zlib's crc32) of `n` bytes, continuing from `crc`.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n);

}  // namespace ringtrain
