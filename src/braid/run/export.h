// braid/run/export.h — a finished run's weights for other tools (`braid export RUN --out DIR`).
//
// Every run:
//   DIR/model.safetensors    every parameter and buffer of the run's model, braid's names (fp32, CPU)
//   DIR/braid_config.json    {"recipe": the resolved recipe (recipe.resolved.yaml as JSON), "facts": run.json,
//                             "weights": which weights, "tensors": {name: shape}, "hf": what hf/ holds or null,
//                             "braid_version"}
// Runs whose model holds a Llama-family LM (a child module "lm" that is an nn::lm::CausalLM: the MLLM's
// language model, an imported LM run) also get its Hugging Face layout, loadable by transformers'
// `from_pretrained(DIR/hf)`:
//   DIR/hf/config.json       LlamaForCausalLM (Qwen2ForCausalLM with attention_bias): run/hf_lm.h hf_lm_config
//   DIR/hf/model.safetensors the LM's tensors under Hugging Face's names (no "lm." prefix; no lm_head when tied)
//   DIR/lm_check.safetensors ids [2, 16] (int64) and braid's logits for them [2, 16, V]: a reader of hf/ checks
//                            its loader against these (scripts/hf/check_export.py does, with transformers)
// Files are written atomically; DIR is created. InputError when the run or its weights are missing.
#pragma once

#include <string>
#include <vector>

namespace braid::run {

struct ExportResult {
  std::vector<std::string> files;  // paths written
  int64_t tensors = 0;             // tensors in DIR/model.safetensors
  std::string hf;                  // "LlamaForCausalLM" / "Qwen2ForCausalLM" when DIR/hf was written, else ""
};

// `weights`: "model", "best", "last" or a file (run/run_dir.h open_run).
ExportResult export_run(const std::string& run, const std::string& out, const std::string& weights = "model");

}  // namespace braid::run
