#include "braid/nn/encoder.h"

#include <torch/torch.h>

#include "braid/nn/encoders/audio_cnn.h"
#include "braid/nn/encoders/audio_tcnn.h"
#include "braid/nn/encoders/hf_bert.h"
#include "braid/nn/encoders/hf_clip.h"
#include "braid/nn/encoders/image_cnn.h"
#include "braid/nn/encoders/image_vit.h"
#include "braid/nn/encoders/raw.h"
#include "braid/nn/encoders/series_gru.h"
#include "braid/nn/encoders/text_bow.h"
#include "braid/nn/encoders/text_transformer.h"

namespace braid::nn {

torch::Tensor EncoderImpl::forward(const ModalityBatch& mb) {
  const int64_t B = mb.present.size(0);
  auto dev = mb.present.device();
  if (!mb.data.defined()) return torch::zeros({B, out_dim_}, torch::TensorOptions().device(dev));
  auto h = encode(mb);
  return h * mb.present.to(h.dtype()).unsqueeze(1);
}

template <typename Impl, typename Opts>
static EncoderPtr make(const Config& c, const EncoderContext& ctx) {
  return std::make_shared<Impl>(Opts::from_config(c), ctx);
}

const EncoderRegistry& encoder_registry() {
  static const EncoderRegistry r = [] {
    EncoderRegistry r("encoder");
    r.add("image_cnn", "convolutional image encoder (conv-BN-ReLU-pool blocks, global pooling)",
          make<ImageCNNImpl, ImageCNNOptions>);
    r.add("image_vit", "Vision Transformer: patch embedding, class token, learned positions, pre-norm blocks",
          make<ImageViTImpl, ImageViTOptions>);
    r.add("audio_cnn", "2-D CNN over the log-mel spectrogram with masked time pooling",
          make<AudioCNNImpl, AudioCNNOptions>);
    r.add("audio_tcnn", "1-D CNN over time with the mel bands as channels, max pooling over valid frames, "
          "SpecAugment-style frequency masks and time shifts in training",
          make<AudioTCNNImpl, AudioTCNNOptions>);
    r.add("text_bow", "bag of learned sub-word embeddings (masked mean) + MLP", make<TextBowImpl, TextBowOptions>);
    r.add("text_transformer", "pre-norm Transformer over sub-word ids with learned positions",
          make<TextTransformerImpl, TextTransformerOptions>);
    r.add("hf_clip_vision", "Hugging Face CLIP / SigLIP vision tower (HF parameter names; `braid import`)",
          make<HFClipVisionImpl, HFClipOptions>);
    r.add("hf_clip_text", "Hugging Face CLIP / SigLIP text tower (HF parameter names; `braid import`)",
          make<HFClipTextImpl, HFClipOptions>);
    r.add("bert", "BERT-family text encoder (HF BertModel names, post-norm) with sentence-transformers pooling; "
          "`braid import hf`", make<HFBertImpl, HFBertOptions>);
    r.add("series_gru", "GRU over time-series frames; the last valid state", make<SeriesGRUImpl, SeriesGRUOptions>);
    r.add("raw", "no parameters: the input pooled to a fixed-length vector (data-level / early fusion)",
          make<RawImpl, RawOptions>);
    return r;
  }();
  return r;
}

}  // namespace braid::nn
