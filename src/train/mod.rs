//! `kesu train`: fine-tune the top encoder layers and the multi-task heads.
//!
//! The frozen lower layers run once over the training set and their hidden
//! states are cached; epochs then run only the tuned top layers and heads.
//! Everything random (initialisation, shuffling, dropout) comes from one
//! seeded generator, so a run is reproducible.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::analyze::{HEADS_STEM, Prepared, feature_matrix, features, prepare};
use crate::dataset::LabelledComplaint;
use crate::model::encoder::by_length;
use crate::model::heads::{
    ComplaintHeads, HeadLogits, HeadsConfig, Temperatures, member_prefix, probabilities,
};
use crate::model::{Encoder, EncoderSettings, ModelError, ModelSource};
use crate::taxonomy::{Label, RiskFlag};
use crate::text::Segmenter;

/// Training choices (all recorded in the model card).
#[derive(Debug, Clone, Serialize)]
pub struct TrainSettings {
    pub name: String,
    pub version: String,
    pub tuned_layers: usize,
    pub hidden: usize,
    pub attention_pool: bool,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr_layers: f64,
    pub lr_heads: f64,
    pub weight_decay: f64,
    pub dropout: f32,
    /// Share of the training data held out for calibration and early figures.
    pub holdout: f64,
    pub seed: u64,
    /// Head sets trained from different seeds and averaged (frozen encoder only).
    pub members: usize,
    /// Weight of the flag loss against the other heads.
    pub flag_loss_weight: f64,
    pub max_tokens: usize,
    /// Keep the frozen-layer hidden states here between runs (keyed by the
    /// texts and settings that produce them); `None` recomputes every run.
    #[serde(skip)]
    pub cache_dir: Option<PathBuf>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            name: "kesu-e5-small-heads".into(),
            version: "0.2.0".into(),
            // The committed model: frozen encoder, mean pooling (fine-tuning
            // the top layer and attention pooling did not generalise better;
            // docs/quality.md).
            tuned_layers: 0,
            hidden: 256,
            attention_pool: false,
            epochs: 40,
            batch_size: 16,
            lr_layers: 3e-5,
            lr_heads: 1e-3,
            weight_decay: 0.01,
            dropout: 0.1,
            holdout: 0.1,
            seed: 20261122,
            // Five seeds averaged: steadier than one (docs/quality.md).
            members: 5,
            flag_loss_weight: 2.0,
            max_tokens: 256,
            cache_dir: None,
        }
    }
}

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Data(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a run did, for the model card.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub settings: TrainSettings,
    pub train_examples: usize,
    pub holdout_examples: usize,
    pub epoch_losses: Vec<f64>,
    pub temperatures: Temperatures,
    pub cache_seconds: f64,
    pub train_seconds: f64,
}

/// One example with its cached frozen-layer hidden states `[len, h]`.
struct Cached {
    hidden: Tensor,
    features: Vec<f32>,
    category: u32,
    intensity: u8,
    motive: u32,
    flags: Vec<f32>,
}

/// Deterministic dropout for training (candle's CPU RNG cannot be seeded).
pub struct SeededDropout {
    pub p: f32,
    rng: StdRng,
}

impl SeededDropout {
    pub fn apply(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        let keep = 1.0 - self.p;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

/// Fine-tune on `data`, write `{out}/kesu-heads.{safetensors,json}`.
pub fn train(
    data: &[LabelledComplaint],
    source: &ModelSource,
    out: &Path,
    settings: &TrainSettings,
) -> Result<TrainReport, TrainError> {
    if data.len() < 20 {
        return Err(TrainError::Data(format!(
            "{} examples are too few to train on",
            data.len()
        )));
    }
    let device = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(settings.seed);

    // Hold out a seeded share for calibration.
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut rng);
    let n_hold = ((data.len() as f64) * settings.holdout).round() as usize;
    let (hold_idx, train_idx) = order.split_at(n_hold);

    let started = Instant::now();
    let encoder = Encoder::load(
        source,
        EncoderSettings {
            max_tokens: settings.max_tokens,
            batch_size: 32,
            batch_tokens: usize::MAX,
            drop_top_layers: settings.tuned_layers,
        },
    )?;
    let segmenter = Segmenter::new();
    let cache = |idx: &[usize]| -> Result<Vec<Cached>, TrainError> {
        let prepared = idx
            .iter()
            .map(|&i| prepare(&encoder, &segmenter, &data[i].text))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = settings.cache_dir.as_ref().map(|dir| {
            dir.join(format!(
                "hidden-{:016x}.safetensors",
                cache_key(source, settings, &prepared)
            ))
        });
        let mut hidden_of: HashMap<String, Tensor> = match &stored {
            Some(path) if path.is_file() => candle_core::safetensors::load(path, &device)?,
            _ => HashMap::new(),
        };
        if hidden_of.len() != idx.len() {
            let lengths: Vec<usize> = prepared.iter().map(|p| p.tokenized.ids.len()).collect();
            let states = by_length(&lengths, 32, usize::MAX, |chunk| {
                let batch: Vec<&Prepared> = chunk.iter().map(|&j| &prepared[j]).collect();
                let (hidden, _) = crate::analyze::frozen_hidden(&encoder, &batch)?;
                chunk
                    .iter()
                    .enumerate()
                    .map(|(row, &j)| {
                        let len = prepared[j].tokenized.ids.len();
                        Ok(hidden.get(row)?.narrow(0, 0, len)?.contiguous()?)
                    })
                    .collect::<Result<Vec<_>, TrainError>>()
            })?;
            hidden_of = states
                .into_iter()
                .enumerate()
                .map(|(j, h)| (j.to_string(), h))
                .collect();
            if let Some(path) = &stored {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                candle_core::safetensors::save(&hidden_of, path)?;
            }
        }
        (0..idx.len())
            .map(|j| {
                let h = hidden_of
                    .remove(&j.to_string())
                    .ok_or_else(|| TrainError::Data(format!("cache misses example {j}")))?;
                Ok(cached(&data[idx[j]], h, prepared[j].features.clone()))
            })
            .collect()
    };
    let train_set = cache(train_idx)?;
    let hold_set = cache(hold_idx)?;
    let cache_seconds = started.elapsed().as_secs_f64();
    tracing::info!(cache_seconds, examples = data.len(), "frozen layers cached");

    // Variables: tuned layers start from the pretrained weights, heads from a
    // seeded uniform init.
    let config = encoder.config().clone();
    let frozen = config.num_hidden_layers;
    // Only the tuned layers need the pretrained tensors: skip a second
    // dequantisation of the whole model when training the heads alone.
    let pretrained = if settings.tuned_layers > 0 {
        source.resolve()?.weights.load(&device)?.tensors
    } else {
        HashMap::new()
    };
    let members = settings.members.max(1);
    if members > 1 && settings.tuned_layers > 0 {
        return Err(TrainError::Data(
            "an ensemble (--members > 1) needs a frozen encoder (--tuned-layers 0)".into(),
        ));
    }
    let varmap = VarMap::new();
    let feature_count = features::feature_count();
    {
        let mut vars = varmap.data().lock().expect("varmap lock is never poisoned");
        for i in 0..settings.tuned_layers {
            let prefix = format!("encoder.layer.{}.", frozen + i);
            for (name, t) in &pretrained {
                if let Some(rest) = name.strip_prefix(&prefix) {
                    vars.insert(format!("layer.{i}.{rest}"), Var::from_tensor(t)?);
                }
            }
        }
        let h = config.hidden_size;
        let pooled = if settings.attention_pool { 2 * h } else { h };
        let input = pooled + feature_count;
        for k in 0..members {
            // Member 0 draws from the run's generator (so one member is the
            // single model); the others from their own seeds.
            let mut own = StdRng::seed_from_u64(settings.seed.wrapping_add(k as u64));
            let rng: &mut StdRng = if k == 0 { &mut rng } else { &mut own };
            let head = member_prefix(k);
            let mut init =
                |name: &str, shape: &[usize], fan_in: usize| -> candle_core::Result<()> {
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    let n: usize = shape.iter().product();
                    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
                    vars.insert(
                        format!("{head}.{name}"),
                        Var::from_tensor(&Tensor::from_vec(v, shape, &device)?)?,
                    );
                    Ok(())
                };
            if settings.attention_pool {
                init("attention_query", &[h], h)?;
            }
            init("shared.weight", &[settings.hidden, input], input)?;
            init("shared.bias", &[settings.hidden], input)?;
            for (name, n) in [
                ("category", crate::taxonomy::Category::ALL.len()),
                ("motive", crate::taxonomy::Motive::ALL.len()),
                ("flags", RiskFlag::ALL.len()),
            ] {
                init(
                    &format!("{name}.weight"),
                    &[n, settings.hidden],
                    settings.hidden,
                )?;
                init(&format!("{name}.bias"), &[n], settings.hidden)?;
            }
            init("intensity.weight", &[1, settings.hidden], settings.hidden)?;
            vars.insert(
                format!("{head}.intensity_thresholds"),
                Var::from_tensor(&Tensor::new(&[1.0f32, 0.0, -1.0], &device)?)?,
            );
        }
    }
    let heads_config = HeadsConfig {
        name: settings.name.clone(),
        version: settings.version.clone(),
        tuned_layers: settings.tuned_layers,
        features: feature_count,
        hidden: settings.hidden,
        attention_pool: settings.attention_pool,
        members,
        temperature: Temperatures::default(),
    };
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let mut heads = ComplaintHeads::load(vb, &config, heads_config)?;

    let named_vars = |keep: &dyn Fn(&str) -> bool| -> Vec<Var> {
        let vars = varmap.data().lock().expect("varmap lock is never poisoned");
        let mut names: Vec<&String> = vars.keys().filter(|n| keep(n)).collect();
        names.sort();
        names.into_iter().map(|n| vars[n].clone()).collect()
    };
    let adam = |lr: f64| ParamsAdamW {
        lr,
        weight_decay: settings.weight_decay,
        ..ParamsAdamW::default()
    };

    // Length-bucketed batches: sort by length, cut, shuffle the batch order.
    let mut by_len: Vec<usize> = (0..train_set.len()).collect();
    by_len.sort_by_key(|&i| train_set[i].hidden.dim(0).unwrap_or(0));
    let batches: Vec<Vec<usize>> = by_len
        .chunks(settings.batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect();
    let total_steps = (batches.len() * settings.epochs).max(1);
    let train_started = Instant::now();
    let mut epoch_losses = Vec::new();
    for k in 0..members {
        let prefix = format!("{}.", member_prefix(k));
        let mut opt_layers = AdamW::new(
            named_vars(&|n| k == 0 && n.starts_with("layer.")),
            adam(settings.lr_layers),
        )?;
        let mut opt_heads = AdamW::new(
            named_vars(&|n| n.starts_with(&prefix)),
            adam(settings.lr_heads),
        )?;
        let salt = k as u64;
        let mut dropout = SeededDropout {
            p: settings.dropout,
            rng: StdRng::seed_from_u64((settings.seed ^ 0x5eed).wrapping_add(salt)),
        };
        let mut own = StdRng::seed_from_u64(settings.seed.wrapping_add(salt) ^ 0xba7c);
        let order_rng: &mut StdRng = if k == 0 { &mut rng } else { &mut own };
        let mut step = 0usize;
        for epoch in 0..settings.epochs {
            let mut order: Vec<usize> = (0..batches.len()).collect();
            order.shuffle(order_rng);
            let mut sum = 0.0;
            for &b in &order {
                // Linear warm-up over the first 5 %, then linear decay.
                let progress = step as f64 / total_steps as f64;
                let scale = if progress < 0.05 {
                    progress / 0.05
                } else {
                    (1.0 - progress) / 0.95
                };
                opt_layers.set_learning_rate(settings.lr_layers * scale.max(0.02));
                opt_heads.set_learning_rate(settings.lr_heads * scale.max(0.02));
                let batch: Vec<&Cached> = batches[b].iter().map(|&i| &train_set[i]).collect();
                let (hidden, mask, feats) = pad_batch(&batch, &device)?;
                let logits = heads.forward_train(k, &hidden, &mask, &feats, &mut dropout)?;
                let loss = batch_loss(&logits, &batch, settings.flag_loss_weight, &device)?;
                let grads = loss.backward()?;
                opt_layers.step(&grads)?;
                opt_heads.step(&grads)?;
                sum += f64::from(loss.to_scalar::<f32>()?);
                step += 1;
            }
            let mean = sum / batches.len().max(1) as f64;
            tracing::info!(member = k, epoch, loss = mean, "epoch done");
            eprintln!(
                "member {}/{members}, epoch {}/{}: loss {mean:.4}",
                k + 1,
                epoch + 1,
                settings.epochs
            );
            epoch_losses.push(mean);
        }
    }
    let train_seconds = train_started.elapsed().as_secs_f64();

    // Calibrate on the held-out share.
    let temperatures = if hold_set.is_empty() {
        Temperatures::default()
    } else {
        fit_temperatures(&heads, &hold_set, &device)?
    };
    heads.config.temperature = temperatures.clone();

    std::fs::create_dir_all(out).map_err(|source| TrainError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let weights_path = out.join(format!("{HEADS_STEM}.safetensors"));
    varmap.save(&weights_path)?;
    let config_path = out.join(format!("{HEADS_STEM}.json"));
    let json = serde_json::to_string_pretty(&heads.config).expect("config serialises");
    std::fs::write(&config_path, json + "\n").map_err(|source| TrainError::Io {
        path: config_path.clone(),
        source,
    })?;
    Ok(TrainReport {
        settings: settings.clone(),
        train_examples: train_set.len(),
        holdout_examples: hold_set.len(),
        epoch_losses,
        temperatures,
        cache_seconds,
        train_seconds,
    })
}

/// FNV-1a over everything that determines the frozen hidden states.
fn cache_key(source: &ModelSource, settings: &TrainSettings, prepared: &[Prepared]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(source.to_string().as_bytes());
    eat(&settings.tuned_layers.to_le_bytes());
    for p in prepared {
        for id in &p.tokenized.ids {
            eat(&id.to_le_bytes());
        }
        eat(b"|");
    }
    h
}

fn cached(c: &LabelledComplaint, hidden: Tensor, features: Vec<f32>) -> Cached {
    let mut flags = vec![0.0; RiskFlag::ALL.len()];
    for f in &c.risk_flags {
        flags[f.index()] = 1.0;
    }
    Cached {
        hidden,
        features,
        category: c.category.index() as u32,
        intensity: c.intensity,
        motive: c.motive.index() as u32,
        flags,
    }
}

/// Right-pad cached hidden states into `[b, s, h]`, with mask and features.
fn pad_batch(batch: &[&Cached], device: &Device) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let seq = batch
        .iter()
        .map(|c| c.hidden.dim(0).unwrap_or(0))
        .max()
        .unwrap_or(0);
    let h = batch[0].hidden.dim(1)?;
    let mut rows = Vec::with_capacity(batch.len());
    let mut mask = Vec::with_capacity(batch.len() * seq);
    for c in batch {
        let len = c.hidden.dim(0)?;
        let padded = if len < seq {
            Tensor::cat(
                &[
                    &c.hidden,
                    &Tensor::zeros((seq - len, h), DType::F32, device)?,
                ],
                0,
            )?
        } else {
            c.hidden.clone()
        };
        rows.push(padded);
        mask.extend(std::iter::repeat_n(1u32, len));
        mask.extend(std::iter::repeat_n(0u32, seq - len));
    }
    let hidden = Tensor::stack(&rows, 0)?;
    let mask = Tensor::from_vec(mask, (batch.len(), seq), device)?;
    let rows: Vec<&[f32]> = batch.iter().map(|c| c.features.as_slice()).collect();
    let feats = feature_matrix(&rows, device)?;
    Ok((hidden, mask, feats))
}

/// Sum of the four task losses.
fn batch_loss(
    logits: &HeadLogits,
    batch: &[&Cached],
    flag_weight: f64,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let b = batch.len();
    let cat = Tensor::from_vec(batch.iter().map(|c| c.category).collect(), b, device)?;
    let mot = Tensor::from_vec(batch.iter().map(|c| c.motive).collect(), b, device)?;
    let ord: Vec<f32> = batch
        .iter()
        .flat_map(|c| (0..3u8).map(move |k| if c.intensity > k { 1.0 } else { 0.0 }))
        .collect();
    let ord = Tensor::from_vec(ord, (b, 3), device)?;
    let flags: Vec<f32> = batch.iter().flat_map(|c| c.flags.iter().copied()).collect();
    let flags = Tensor::from_vec(flags, (b, RiskFlag::ALL.len()), device)?;
    let l_cat = candle_nn::loss::cross_entropy(&logits.category, &cat)?;
    let l_mot = candle_nn::loss::cross_entropy(&logits.motive, &mot)?;
    let l_int = bce_with_logits(&logits.intensity, &ord)?;
    let l_flag = bce_with_logits(&logits.flags, &flags)?;
    // The ordinal loss averages over 3 thresholds; scale it like one softmax head.
    l_cat + l_mot + (l_int * 3.0)? + (l_flag * flag_weight)?
}

/// Mean binary cross-entropy on logits in the stable form
/// `max(x, 0) - x·y + ln(1 + e^(-|x|))` (candle's version takes ln of a
/// saturated sigmoid and turns into NaN once a logit grows large).
pub fn bce_with_logits(x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (x.relu()? - (x * y)?)?.add(&softplus)?.mean_all()
}

/// Held-out logits of every head, in batches.
fn holdout_logits(
    heads: &ComplaintHeads,
    set: &[Cached],
    device: &Device,
) -> candle_core::Result<HeadLogits> {
    let mut parts: Vec<HeadLogits> = Vec::new();
    for chunk in set.chunks(32) {
        let batch: Vec<&Cached> = chunk.iter().collect();
        let (hidden, mask, feats) = pad_batch(&batch, device)?;
        parts.push(heads.forward(&hidden, &mask, &feats)?);
    }
    let cat = |f: fn(&HeadLogits) -> &Tensor| -> candle_core::Result<Tensor> {
        Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0)
    };
    Ok(HeadLogits {
        category: cat(|l| &l.category)?,
        intensity: cat(|l| &l.intensity)?,
        motive: cat(|l| &l.motive)?,
        flags: cat(|l| &l.flags)?,
    })
}

/// Grid-search one temperature per head minimising held-out negative log-likelihood.
fn fit_temperatures(
    heads: &ComplaintHeads,
    set: &[Cached],
    device: &Device,
) -> candle_core::Result<Temperatures> {
    let logits = holdout_logits(heads, set, device)?;
    let grid: Vec<f32> = (0..=56).map(|i| 0.5 + 0.05 * i as f32).collect();
    let nll_at = |t: &Temperatures| -> candle_core::Result<[f64; 4]> {
        let probs = probabilities(&logits, t)?;
        let mut nll = [0.0f64; 4];
        for (p, c) in probs.iter().zip(set) {
            let ln = |x: f32| -f64::from(x.max(1e-7)).ln();
            nll[0] += ln(p.category[c.category as usize]);
            nll[1] += ln(p.intensity[usize::from(c.intensity)]);
            nll[2] += ln(p.motive[c.motive as usize]);
            for (q, y) in p.flags.iter().zip(&c.flags) {
                nll[3] += if *y > 0.5 { ln(*q) } else { ln(1.0 - q) };
            }
        }
        Ok(nll)
    };
    let mut best = [(f64::MAX, 1.0f32); 4];
    for &t in &grid {
        let temps = Temperatures {
            category: t,
            intensity: t,
            motive: t,
            flags: t,
        };
        for (slot, value) in best.iter_mut().zip(nll_at(&temps)?) {
            if value < slot.0 {
                *slot = (value, t);
            }
        }
    }
    Ok(Temperatures {
        category: best[0].1,
        intensity: best[1].1,
        motive: best[2].1,
        flags: best[3].1,
    })
}

impl ComplaintHeads {
    /// Training forward pass of one member with seeded dropout on the head inputs.
    pub fn forward_train(
        &self,
        member: usize,
        hidden: &Tensor,
        mask: &Tensor,
        features: &Tensor,
        dropout: &mut SeededDropout,
    ) -> candle_core::Result<HeadLogits> {
        self.forward_with(hidden, mask, features, Some(member), true, &mut |x| {
            dropout.apply(x)
        })
    }
}

/// Summaries for the model card.
pub fn label_counts(data: &[LabelledComplaint]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for c in data {
        *counts
            .entry(format!("category:{}", c.category))
            .or_default() += 1;
        *counts
            .entry(format!("intensity:{}", c.intensity))
            .or_default() += 1;
        *counts.entry(format!("motive:{}", c.motive)).or_default() += 1;
        for f in &c.risk_flags {
            *counts.entry(format!("flag:{f}")).or_default() += 1;
        }
    }
    counts
}
