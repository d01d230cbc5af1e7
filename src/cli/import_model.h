// `ringtrain import HF_DIR OUT.h5`: a Hugging Face Llama or Mistral directory becomes a
// ringtrain checkpoint at step 0 (fp32 weights, zero AdamW moments, the model section from
// config.json) that any layout loads, plus OUT.yaml, the resolved config stored in it (train
// or evaluate the model with it, or start from it with checkpoint.init_from).
#pragma once

#include <ostream>
#include <string>

namespace ringtrain {

// Run by one process (its own MPI_COMM_SELF mesh). Input errors name the config.json key or
// the tensor that ringtrain's model cannot hold.
void import_hf_model(const std::string& hf_dir, const std::string& out_path, std::ostream& log);

}  // namespace ringtrain
