//! The BERT encoder kesu runs: embeddings + [`TrainableLayer`]s, loading the
//! checkpoint names of candle-transformers' `BertModel` (and computing the
//! same function — a test compares the two on the real weights).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};
use candle_transformers::models::bert::Config;

use super::layer::{TrainableLayer, mask_bias};

/// Word + position + token-type embeddings, then LayerNorm.
struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm_weight: Tensor,
    norm_bias: Tensor,
    eps: f32,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            word: embedding(cfg.vocab_size, h, vb.pp("word_embeddings"))?,
            position: embedding(cfg.max_position_embeddings, h, vb.pp("position_embeddings"))?,
            token_type: embedding(cfg.type_vocab_size, h, vb.pp("token_type_embeddings"))?,
            norm_weight: vb.pp("LayerNorm").get(h, "weight")?,
            norm_bias: vb.pp("LayerNorm").get(h, "bias")?,
            eps: cfg.layer_norm_eps as f32,
        })
    }

    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let x = self
            .word
            .forward(ids)?
            .broadcast_add(&self.position.forward(&positions)?)?
            .broadcast_add(&self.token_type.forward(&Tensor::zeros(
                1,
                candle_core::DType::U32,
                ids.device(),
            )?)?)?;
        candle_nn::ops::layer_norm(
            &x.contiguous()?,
            &self.norm_weight,
            &self.norm_bias,
            self.eps,
        )
    }
}

/// The encoder stack (all or the lower part of the layers).
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<TrainableLayer>,
}

impl Bert {
    /// Load embeddings and `cfg.num_hidden_layers` layers from `vb`
    /// (`embeddings.*`, `encoder.layer.{i}.*`).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| TrainableLayer::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: Embeddings::load(vb.pp("embeddings"), cfg)?,
            layers,
        })
    }

    /// `ids [b, s]` u32, `mask [b, s]` (1 = real token) → hidden `[b, s, h]`.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let bias = mask_bias(mask)?;
        let mut x = self.embeddings.forward(ids)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, false)?;
        }
        Ok(x)
    }
}
