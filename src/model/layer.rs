//! A BERT encoder layer that can be trained, and runs fast.
//!
//! candle-transformers' `BertLayer` keeps its `forward` private and uses the
//! fused layer-norm op, which has no backward pass; fine-tuning the top layers
//! needs both. Its token-wise projections also run as single `[b*s, h]`
//! matmuls, several times faster on CPU than candle's broadcast batched
//! matmuls. This layer reads the same checkpoint names (`attention.self.query`,
//! `output.LayerNorm` …) and computes the same function; a test checks it
//! against `BertModel` on the real weights.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use candle_transformers::models::bert::Config;

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    /// The composite form is differentiable; the fused op is faster.
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps)
        } else {
            candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
        }
    }
}

/// One post-norm BERT layer: self-attention, then the feed-forward block.
pub struct TrainableLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: Norm,
    heads: usize,
    head_dim: usize,
}

impl TrainableLayer {
    /// Load from `vb` positioned at `encoder.layer.{i}` (or any prefix with the same names).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        let att = vb.pp("attention");
        Ok(Self {
            query: linear(h, h, att.pp("self").pp("query"))?,
            key: linear(h, h, att.pp("self").pp("key"))?,
            value: linear(h, h, att.pp("self").pp("value"))?,
            attn_out: linear(h, h, att.pp("output").pp("dense"))?,
            attn_norm: Norm::load(att.pp("output").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            ffn_in: linear(h, cfg.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            ffn_out: linear(cfg.intermediate_size, h, vb.pp("output").pp("dense"))?,
            out_norm: Norm::load(vb.pp("output").pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    /// `x [b, s, h]`; `mask_bias [b, 1, 1, s]` is 0 for real tokens, a large
    /// negative number for padding (see [`mask_bias`]).
    pub fn forward(&self, x: &Tensor, mask_bias: &Tensor, train: bool) -> Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        // Token-wise projections run as one [b*s, h] matmul: a broadcast
        // batched matmul would re-pack the weight for every sequence.
        let flat = x.reshape((b * s, h))?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, s, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(&flat)?)?;
        let k = split(self.key.forward(&flat)?)?;
        let v = split(self.value.forward(&flat)?)?;
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?;
        let scores = scores.broadcast_add(mask_bias)?;
        // The fused softmax has no backward pass; training takes the composite.
        let probs = if train {
            candle_nn::ops::softmax(&scores, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, h))?;
        let attended = self
            .attn_norm
            .forward(&(self.attn_out.forward(&ctx)? + &flat)?, train)?;
        let pre = self.ffn_in.forward(&attended)?;
        let inner = if train {
            pre.gelu_erf()?
        } else {
            super::ops::gelu_erf_fast(&pre)?
        };
        self.out_norm
            .forward(&(self.ffn_out.forward(&inner)? + attended)?, train)?
            .reshape((b, s, h))
    }
}

/// `[b, s]` 0/1 mask → `[b, 1, 1, s]` additive bias, as BERT builds it.
pub fn mask_bias(mask: &Tensor) -> Result<Tensor> {
    let m = mask
        .to_dtype(candle_core::DType::F32)?
        .unsqueeze(1)?
        .unsqueeze(1)?;
    (m.ones_like()? - m)? * f64::from(f32::MIN)
}
