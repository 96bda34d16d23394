//! The complaint model on top of the frozen encoder layers: the fine-tuned top
//! encoder layers, mean pooling, and multi-task heads — category softmax,
//! ordinal intensity (cumulative logits), motive softmax and one sigmoid per
//! risk flag — over the pooled vector and the surface features.
//!
//! The same module serves training (VarMap-backed, differentiable) and
//! inference (loaded from the committed safetensors artefact).

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use candle_transformers::models::bert::Config;
use serde::{Deserialize, Serialize};

use super::encoder::{l2_normalize, mean_pool};
use super::layer::{TrainableLayer, mask_bias};
use crate::taxonomy::{Category, Label, Motive, RiskFlag};

/// Shape and provenance of a trained head set; stored as JSON metadata in the
/// safetensors file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadsConfig {
    /// Model name shown in every Analysis record.
    pub name: String,
    /// Model version shown in every Analysis record.
    pub version: String,
    /// Encoder layers fine-tuned and stored in the artefact (the top ones).
    pub tuned_layers: usize,
    /// Width of the surface-feature vector.
    pub features: usize,
    /// Width of the shared hidden layer.
    pub hidden: usize,
    /// Add a learned attention pooling beside the mean pooling.
    #[serde(default)]
    pub attention_pool: bool,
    /// Independently initialised and trained head sets whose logits are
    /// averaged (a deep ensemble over the same frozen features).
    #[serde(default = "one")]
    pub members: usize,
    /// Per-head temperatures fitted on held-out training data (for the
    /// averaged logits).
    pub temperature: Temperatures,
}

fn one() -> usize {
    1
}

/// Checkpoint prefix of ensemble member `k` (`head`, `head1`, `head2`, …).
pub fn member_prefix(k: usize) -> String {
    if k == 0 {
        "head".to_string()
    } else {
        format!("head{k}")
    }
}

/// Softmax / sigmoid temperatures that calibrate each head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperatures {
    pub category: f32,
    pub intensity: f32,
    pub motive: f32,
    pub flags: f32,
}

impl Default for Temperatures {
    fn default() -> Self {
        Self {
            category: 1.0,
            intensity: 1.0,
            motive: 1.0,
            flags: 1.0,
        }
    }
}

/// Raw (uncalibrated) logits of every head for a batch.
pub struct HeadLogits {
    /// `[b, 11]`
    pub category: Tensor,
    /// `[b, 3]` cumulative logits: P(intensity > k) for k = 0, 1, 2.
    pub intensity: Tensor,
    /// `[b, 4]`
    pub motive: Tensor,
    /// `[b, 10]`
    pub flags: Tensor,
}

/// One set of heads over the pooled vector and the features.
struct Member {
    attention_query: Option<Tensor>,
    shared: Linear,
    category: Linear,
    intensity: Linear,
    intensity_bias: Tensor,
    motive: Linear,
    flags: Linear,
}

impl Member {
    fn load(head: VarBuilder, bert: &Config, config: &HeadsConfig) -> Result<Self> {
        let pooled = if config.attention_pool { 2 } else { 1 } * bert.hidden_size;
        let input = pooled + config.features;
        let attention_query = if config.attention_pool {
            Some(head.get(bert.hidden_size, "attention_query")?)
        } else {
            None
        };
        Ok(Self {
            attention_query,
            shared: linear(input, config.hidden, head.pp("shared"))?,
            category: linear(config.hidden, Category::ALL.len(), head.pp("category"))?,
            // One direction, three ordered thresholds (CORAL).
            intensity: candle_nn::linear_no_bias(config.hidden, 1, head.pp("intensity"))?,
            intensity_bias: head.get_with_hints(
                3,
                "intensity_thresholds",
                candle_nn::Init::Const(0.0),
            )?,
            motive: linear(config.hidden, Motive::ALL.len(), head.pp("motive"))?,
            flags: linear(config.hidden, RiskFlag::ALL.len(), head.pp("flags"))?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        mean: &Tensor,
        features: &Tensor,
        dropout: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
    ) -> Result<HeadLogits> {
        let mut pooled = mean.clone();
        if let Some(query) = &self.attention_query {
            // scores [b, s] = x · q, padding masked out, softmax over tokens.
            let (b, s, h) = x.dims3()?;
            let scores = x
                .reshape((b * s, h))?
                .matmul(&query.unsqueeze(1)?)?
                .reshape((b, s))?;
            let pad = ((mask.to_dtype(scores.dtype())? - 1.0)? * 1e9)?;
            let weights = candle_nn::ops::softmax(&(scores + pad)?, D::Minus1)?;
            let attended = weights.unsqueeze(1)?.matmul(x)?.squeeze(1)?;
            let attended = (l2_normalize(&attended)? * POOLED_SCALE)?;
            pooled = Tensor::cat(&[&pooled, &attended], D::Minus1)?;
        }
        let z = dropout(&Tensor::cat(&[&pooled, features], D::Minus1)?)?;
        let h = dropout(&self.shared.forward(&z)?.gelu_erf()?)?;
        Ok(HeadLogits {
            category: self.category.forward(&h)?,
            intensity: self
                .intensity
                .forward(&h)?
                .broadcast_add(&self.intensity_bias)?,
            motive: self.motive.forward(&h)?,
            flags: self.flags.forward(&h)?,
        })
    }
}

/// Top encoder layers + pooling + heads (one or more ensemble members).
pub struct ComplaintHeads {
    layers: Vec<TrainableLayer>,
    members: Vec<Member>,
    pub config: HeadsConfig,
}

impl ComplaintHeads {
    /// Build from `vb`: layers at `layer.{i}`, member k's heads at
    /// [`member_prefix`]`(k)`.
    pub fn load(vb: VarBuilder, bert: &Config, config: HeadsConfig) -> Result<Self> {
        let layers = (0..config.tuned_layers)
            .map(|i| TrainableLayer::load(vb.pp(format!("layer.{i}")), bert))
            .collect::<Result<Vec<_>>>()?;
        let members = (0..config.members.max(1))
            .map(|k| Member::load(vb.pp(member_prefix(k)), bert, &config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            members,
            config,
        })
    }

    /// `hidden [b, s, h]` from the frozen layers, `mask [b, s]`, surface
    /// `features [b, f]` → logits averaged over the members (inference: no dropout).
    pub fn forward(&self, hidden: &Tensor, mask: &Tensor, features: &Tensor) -> Result<HeadLogits> {
        self.forward_with(hidden, mask, features, None, false, &mut |x| Ok(x.clone()))
    }

    /// The forward pass of one member (`Some(k)`) or the average of all, with
    /// a dropout function applied to the head inputs; `train` selects the
    /// differentiable layer norm.
    pub fn forward_with(
        &self,
        hidden: &Tensor,
        mask: &Tensor,
        features: &Tensor,
        member: Option<usize>,
        train: bool,
        dropout: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
    ) -> Result<HeadLogits> {
        let bias = mask_bias(mask)?;
        let mut x = hidden.clone();
        for layer in &self.layers {
            x = layer.forward(&x, &bias, train)?;
        }
        // Pooled vectors have unit norm; scale them so their entries are on
        // the same order as the features.
        let mean = (l2_normalize(&mean_pool(&x, mask)?)? * POOLED_SCALE)?;
        if let Some(k) = member {
            return self.members[k].forward(&x, mask, &mean, features, dropout);
        }
        let mut sum: Option<HeadLogits> = None;
        for m in &self.members {
            let l = m.forward(&x, mask, &mean, features, dropout)?;
            sum = Some(match sum {
                None => l,
                Some(s) => HeadLogits {
                    category: (s.category + l.category)?,
                    intensity: (s.intensity + l.intensity)?,
                    motive: (s.motive + l.motive)?,
                    flags: (s.flags + l.flags)?,
                },
            });
        }
        let s = sum.expect("at least one member");
        let n = self.members.len() as f64;
        Ok(HeadLogits {
            category: (s.category / n)?,
            intensity: (s.intensity / n)?,
            motive: (s.motive / n)?,
            flags: (s.flags / n)?,
        })
    }
}

/// Scale of the unit-norm pooled embedding fed to the heads.
const POOLED_SCALE: f64 = 8.0;

/// Calibrated probabilities for one complaint.
#[derive(Debug, Clone)]
pub struct HeadProbs {
    pub category: Vec<f32>,
    /// Probability of each intensity level 0..=3.
    pub intensity: Vec<f32>,
    pub motive: Vec<f32>,
    pub flags: Vec<f32>,
}

/// Apply temperatures and turn logits into per-row probabilities.
pub fn probabilities(logits: &HeadLogits, t: &Temperatures) -> Result<Vec<HeadProbs>> {
    let softmax = |x: &Tensor, temp: f32| -> Result<Vec<Vec<f32>>> {
        candle_nn::ops::softmax_last_dim(&(x / f64::from(temp))?)?.to_vec2()
    };
    let sigmoid = |x: &Tensor, temp: f32| -> Result<Vec<Vec<f32>>> {
        candle_nn::ops::sigmoid(&(x / f64::from(temp))?)?.to_vec2()
    };
    let category = softmax(&logits.category, t.category)?;
    let motive = softmax(&logits.motive, t.motive)?;
    let flags = sigmoid(&logits.flags, t.flags)?;
    let cumulative = sigmoid(&logits.intensity, t.intensity)?;
    Ok(category
        .into_iter()
        .zip(motive)
        .zip(flags)
        .zip(cumulative)
        .map(|(((category, motive), flags), cum)| HeadProbs {
            category,
            intensity: ordinal_levels(&cum),
            motive,
            flags,
        })
        .collect())
}

/// P(level = k) from cumulative P(level > k), made monotone first.
pub fn ordinal_levels(cum: &[f32]) -> Vec<f32> {
    let mut gt = Vec::with_capacity(cum.len());
    let mut prev = 1.0f32;
    for &p in cum {
        let p = p.min(prev);
        gt.push(p);
        prev = p;
    }
    let mut levels = Vec::with_capacity(cum.len() + 1);
    let mut above = 1.0f32;
    for &p in &gt {
        levels.push((above - p).max(0.0));
        above = p;
    }
    levels.push(above);
    let sum: f32 = levels.iter().sum();
    levels.iter().map(|p| p / sum.max(1e-12)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_levels_sum_to_one_and_follow_thresholds() {
        let p = ordinal_levels(&[0.9, 0.6, 0.1]);
        assert_eq!(p.len(), 4);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.1).abs() < 1e-6 && (p[1] - 0.3).abs() < 1e-6);
        assert!((p[2] - 0.5).abs() < 1e-6 && (p[3] - 0.1).abs() < 1e-6);
        // Non-monotone thresholds are clamped, never negative.
        let q = ordinal_levels(&[0.2, 0.7, 0.9]);
        assert!(q.iter().all(|&x| x >= 0.0));
    }
}
