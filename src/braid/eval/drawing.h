// braid/eval/drawing.h — evaluation of a text -> image run (`braid eval RUN --task draw`, issue 17).
//
// Each row of a split is a prompt (its text, in the drawing run's text view) and a real image. The drawing
// run draws `per_prompt` images per row; two further runs judge them, none with external weights:
//   - CAS (classification accuracy score): a classifier trained on real images only (task classify,
//     model.modalities [image]) labels the drawn images; the share that gets the row's label. The same
//     classifier on the real images of the split is the reference.
//   - retrieval: an align run's image tower (embed("image")) ranks the split's real images for each drawn
//     image; a hit at K when a real image of the row's `group` (the emoji) is in the top K: R@1, R@10.
//   - KID (Binkowski et al. 2018, "Demystifying MMD GANs") between the drawn and the real images in the same
//     image tower's space: unbiased MMD^2 under k(x, y) = (x.y/d + 1)^3, mean and std over random subsets.
// And the same three for two baselines in the same pass:
//   - nearest_name: for each row, the real image of the train row whose text is nearest by the align run's
//     text embedding (what a lookup of a known name gives);
//   - vq_ceiling: the row's real image through the drawing run's own image tokenizer and back
//     (decode_codes(codes(image))): the best a model that writes those codes can do.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "braid/core/batch.h"
#include "braid/data/image.h"
#include "braid/eval/evaluate.h"

namespace braid::eval {

struct DrawEvalOptions {
  std::string split = "test";        // the prompts and the real images
  std::string train_split;           // nearest_name looks here ("" = the drawing recipe's data.train_split)
  double guidance = 3.0;             // classifier-free guidance weight of the drawing (0 = unguided)
  int64_t per_prompt = 3;            // images drawn per row
  double temperature = 1.0;          // sampling of the codes (0 = greedy)
  int64_t top_k = 0;                 // sample among the k most likely codes (0 = all)
  uint64_t seed = 0;                 // sampling (call c of the split is seeded mix_seed(seed, c)) and KID subsets
  int64_t prompts_per_call = 32;     // rows per ModelImpl::draw call (part of the seeding: keep it for
                                     // reproducible images)
  int64_t kid_subsets = 10;          // KID: subsets drawn ...
  int64_t kid_subset_size = 1000;    // ... of min(this, n) rows of each side
  std::string out_dir;               // "" = write nothing; else every drawn PNG (<row id>-<k>.png), the grids
                                     // and prompts.txt
  int64_t grid_cells = 24;           // grid.png: the first image of the first row of this many groups
  int64_t grid_cols = 6;
};

// The evaluation above: `drawer` draws (capabilities().draws; a tokenizer), `classifier` is a classify run
// reading images only, `clip` an align run that embeds image and text. InputError (one line, naming the
// run or the manifest) when a run lacks what its role needs or the split has no row with text and image.
// Returns {"generated": {cas, r1, r10, kid, kid_std, n}, "nearest_name": {...}, "vq_ceiling": {...} (when the
// drawer has codes), "real": {cas, n}, "guidance", "per_prompt", "rows", "seconds", "draw_seconds", ...}.
nlohmann::json evaluate_drawing(Pipeline& drawer, Pipeline& classifier, Pipeline& clip,
                                const std::shared_ptr<const data::Manifest>& manifest, const DrawEvalOptions& o);

// A table of an evaluate_drawing result (one row per image source), for the terminal.
std::string format_drawing(const nlohmann::json& r);

// ---- the pieces, usable on their own (tests) ----

// Unbiased MMD^2 of x [n, d] and y [m, d] (n, m >= 2) under k(a, b) = (a.b/d + 1)^3: the mean of k over the
// n(n-1) ordered pairs of distinct rows of x, plus the same over y, minus twice the mean over the n*m cross
// pairs. Computed in double precision.
double polynomial_mmd2(const torch::Tensor& x, const torch::Tensor& y);

struct KidResult {
  double mean = 0, std = 0;     // over the subsets (std: population, 0 for one subset)
  int64_t subsets = 0, x_size = 0, y_size = 0;  // subset count and rows per subset of each side
};
// KID: polynomial_mmd2 of `subsets` random subsets, each min(subset_size, n) rows of x and min(subset_size, m)
// rows of y drawn without replacement (a side not larger than subset_size is used whole). `seed` fixes the
// choice.
KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y, int64_t subsets = 10,
                                    int64_t subset_size = 1000, uint64_t seed = 0);

// Accuracy of argmax(logits [N, K]) against labels [N] over the rows with a label (>= 0); `n` = those rows.
struct LabelAccuracy {
  double accuracy = 0;
  int64_t n = 0;
};
LabelAccuracy label_accuracy(const torch::Tensor& logits, const torch::Tensor& labels);

// Images [N, 3, H, W] in [0, 1] as a run's image input: resized to opt.size x opt.size (antialiased bilinear,
// as data::resize_image) when the side differs, normalized with opt.mean / opt.std; every row present.
ModalityBatch image_input(const torch::Tensor& images01, const data::ImageOptions& opt);

}  // namespace braid::eval
