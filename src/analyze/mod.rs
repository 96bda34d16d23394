//! The analysis pipeline: text → segments + rule hits + surface features →
//! frozen encoder layers → fine-tuned top layers and heads → Analysis record.

pub mod features;
pub mod record;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

pub use record::{
    Analysis, Evidence, EvidenceSource, FlagResult, IntensityResult, ModelInfo, Risk, Scored,
};

use crate::model::encoder::by_length;
use crate::model::heads::{ComplaintHeads, HeadProbs, HeadsConfig, probabilities};
use crate::model::{Encoder, EncoderSettings, ModelError, ModelSource, Tokenized};
use crate::risk::{RuleHit, scan};
use crate::taxonomy::{Category, Intensity, Label, Motive, RiskFlag, RiskLevel, TAXONOMY_VERSION};
use crate::text::Segmenter;

/// File stem of the trained artefact (`.safetensors` weights + `.json` config).
pub const HEADS_STEM: &str = "kesu-heads";
/// Where the trained artefact lives, relative to the repository.
pub const DEFAULT_HEADS_DIR: &str = "models";

/// Everything the analyzer can fail on.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("trained heads: {0}")]
    Heads(String),
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// `models/` in the working directory if it holds the artefact, else beside the sources.
pub fn default_heads_dir() -> PathBuf {
    let local = PathBuf::from(DEFAULT_HEADS_DIR);
    if local.join(format!("{HEADS_STEM}.json")).is_file() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_HEADS_DIR)
}

/// One complaint made ready for the model.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub tokenized: Tokenized,
    pub hits: Vec<RuleHit>,
    pub features: Vec<f32>,
}

impl Prepared {
    /// Tokens the model will read, specials included.
    pub fn tokens(&self) -> usize {
        self.tokenized.ids.len()
    }
}

/// One complaint to analyse: caller's id, original text, its preparation.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub id: Option<&'a str>,
    pub text: &'a str,
    pub prepared: &'a Prepared,
}

/// Segment, scan for rule cues and compute surface features, and tokenize.
pub fn prepare(
    encoder: &Encoder,
    segmenter: &Segmenter,
    text: &str,
) -> Result<Prepared, ModelError> {
    let segments = segmenter.segment(text);
    let hits = scan(text, &segments);
    let features = features::features(text, &hits);
    Ok(Prepared {
        tokenized: encoder.tokenize(text)?,
        hits,
        features,
    })
}

/// Run the frozen encoder layers on a batch: hidden states and mask.
pub fn frozen_hidden(
    encoder: &Encoder,
    batch: &[&Prepared],
) -> Result<(Tensor, Tensor), ModelError> {
    let tokens: Vec<&Tokenized> = batch.iter().map(|p| &p.tokenized).collect();
    encoder.forward(&tokens)
}

/// `[b, f]` matrix of per-complaint feature rows.
pub fn feature_matrix(rows: &[&[f32]], device: &Device) -> candle_core::Result<Tensor> {
    let width = rows.first().map_or(0, |r| r.len());
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (rows.len(), width), device)
}

/// The complete analyzer: encoder, trained heads, segmenter.
pub struct Analyzer {
    encoder: Encoder,
    heads: ComplaintHeads,
    segmenter: Segmenter,
    info: ModelInfo,
}

impl Analyzer {
    /// Load the encoder (frozen layers only) and the trained artefact from `heads_dir`.
    pub fn load(
        source: &ModelSource,
        heads_dir: &Path,
        settings: EncoderSettings,
    ) -> Result<Self, AnalyzeError> {
        let config_path = heads_dir.join(format!("{HEADS_STEM}.json"));
        let weights_path = heads_dir.join(format!("{HEADS_STEM}.safetensors"));
        let config: HeadsConfig = std::fs::read_to_string(&config_path)
            .map_err(|e| {
                AnalyzeError::Heads(format!("{}: {e} (run `kesu train`)", config_path.display()))
            })
            .and_then(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| AnalyzeError::Heads(format!("{}: {e}", config_path.display())))
            })?;
        if config.features != features::feature_count() {
            return Err(AnalyzeError::Heads(format!(
                "{} was trained on {} surface features, this build computes {}: retrain with `kesu train`",
                config_path.display(),
                config.features,
                features::feature_count()
            )));
        }
        let encoder = Encoder::load(
            source,
            EncoderSettings {
                drop_top_layers: config.tuned_layers,
                ..settings
            },
        )?;
        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(&weights_path, &device)
            .map_err(|e| AnalyzeError::Heads(format!("{}: {e}", weights_path.display())))?;
        let vb = candle_nn::VarBuilder::from_tensors(tensors, candle_core::DType::F32, &device);
        let heads = ComplaintHeads::load(vb, encoder.config(), config.clone())?;
        Ok(Self {
            encoder,
            heads,
            segmenter: Segmenter::new(),
            info: ModelInfo {
                name: config.name,
                version: config.version,
                taxonomy: TAXONOMY_VERSION.to_string(),
            },
        })
    }

    pub fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Segment, scan and tokenize one text (cheap; no forward pass).
    pub fn prepare(&self, text: &str) -> Result<Prepared, AnalyzeError> {
        Ok(prepare(&self.encoder, &self.segmenter, text)?)
    }

    /// Analyse texts (ids echoed), in length-sorted batches; output in input order.
    pub fn analyze(&self, items: &[(Option<String>, &str)]) -> Result<Vec<Analysis>, AnalyzeError> {
        Ok(self
            .analyze_texts_with_probabilities(items)?
            .into_iter()
            .map(|(record, _)| record)
            .collect())
    }

    /// [`Analyzer::analyze`] with every head's full distribution (evaluation).
    pub fn analyze_texts_with_probabilities(
        &self,
        items: &[(Option<String>, &str)],
    ) -> Result<Vec<(Analysis, HeadProbs)>, AnalyzeError> {
        let prepared = items
            .iter()
            .map(|(_, text)| self.prepare(text))
            .collect::<Result<Vec<_>, _>>()?;
        let jobs: Vec<Job<'_>> = items
            .iter()
            .zip(&prepared)
            .map(|((id, text), prepared)| Job {
                id: id.as_deref(),
                text,
                prepared,
            })
            .collect();
        self.analyze_with_probabilities(&jobs)
    }

    /// Analyse prepared complaints in length-sorted batches; output in input order.
    pub fn analyze_prepared(&self, jobs: &[Job<'_>]) -> Result<Vec<Analysis>, AnalyzeError> {
        Ok(self
            .analyze_with_probabilities(jobs)?
            .into_iter()
            .map(|(record, _)| record)
            .collect())
    }

    /// Records with every head's full calibrated distribution (evaluation:
    /// a record lists only the raised flags).
    pub fn analyze_with_probabilities(
        &self,
        jobs: &[Job<'_>],
    ) -> Result<Vec<(Analysis, HeadProbs)>, AnalyzeError> {
        let lengths: Vec<usize> = jobs.iter().map(|j| j.prepared.tokens()).collect();
        let settings = self.encoder.settings();
        by_length(
            &lengths,
            settings.batch_size,
            settings.batch_tokens,
            |chunk| {
                let batch: Vec<&Prepared> = chunk.iter().map(|&i| jobs[i].prepared).collect();
                let probs = self.probabilities(&batch)?;
                Ok(chunk
                    .iter()
                    .zip(probs)
                    .map(|(&i, p)| {
                        let job = &jobs[i];
                        let record =
                            self.decide(job.id.map(str::to_string), job.text, job.prepared, &p);
                        (record, p)
                    })
                    .collect())
            },
        )
    }

    /// Calibrated head probabilities for one batch.
    pub fn probabilities(&self, batch: &[&Prepared]) -> Result<Vec<HeadProbs>, AnalyzeError> {
        let (hidden, mask) = frozen_hidden(&self.encoder, batch)?;
        let rows: Vec<&[f32]> = batch.iter().map(|p| p.features.as_slice()).collect();
        let feats = feature_matrix(&rows, hidden.device())?;
        let logits = self.heads.forward(&hidden, &mask, &feats)?;
        Ok(probabilities(&logits, &self.heads.config.temperature)?)
    }

    fn decide(&self, id: Option<String>, text: &str, prep: &Prepared, p: &HeadProbs) -> Analysis {
        let (ci, cs) = argmax(&p.category);
        let (ii, is) = argmax(&p.intensity);
        let (mi, ms) = argmax(&p.motive);
        let intensity = Intensity::from_index(ii);
        let mut flags = Vec::new();
        for (fi, &score) in p.flags.iter().enumerate() {
            if score < 0.5 {
                continue;
            }
            let flag = RiskFlag::from_index(fi);
            flags.push(FlagResult {
                flag,
                score,
                evidence: evidence(text, flag, &prep.hits),
            });
        }
        let raised: Vec<RiskFlag> = flags.iter().map(|f| f.flag).collect();
        let level = RiskLevel::from_flags(&raised, intensity);
        Analysis {
            id,
            category: Scored {
                label: Category::from_index(ci),
                score: cs,
            },
            intensity: IntensityResult {
                level: intensity.level(),
                label: intensity,
                score: is,
            },
            motive: Scored {
                label: Motive::from_index(mi),
                score: ms,
            },
            risk: Risk {
                level,
                flagged: level.is_flagged(),
                flags,
            },
            model: self.info.clone(),
            truncated: prep.tokenized.truncated,
        }
    }
}

fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, v)| if v > best.1 { (i, v) } else { best },
    )
}

/// Sentences of `text` as (start, end) char offsets, split after 。！？!?；; and newlines.
fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut n = 0;
    for c in text.chars() {
        n += 1;
        if matches!(c, '。' | '！' | '？' | '!' | '?' | '；' | ';' | '\n') {
            if n > start {
                out.push((start, n));
            }
            start = n;
        }
    }
    if n > start {
        out.push((start, n));
    }
    out
}

/// Rule spans for `flag`; without one, the sentence holding the most cues of
/// any kind (the model read the whole text, this is where it most likely looked).
fn evidence(text: &str, flag: RiskFlag, hits: &[RuleHit]) -> Vec<Evidence> {
    let chars: Vec<char> = text.chars().collect();
    let span = |start: usize, end: usize, source| Evidence {
        text: chars[start..end].iter().collect(),
        start,
        end,
        source,
    };
    let own: Vec<Evidence> = hits
        .iter()
        .filter(|h| h.flag == flag && !h.negated)
        .map(|h| span(h.start, h.end, EvidenceSource::Rule))
        .collect();
    if !own.is_empty() {
        return own;
    }
    let best = sentences(text)
        .into_iter()
        .max_by_key(|&(s, e)| {
            let cues = hits.iter().filter(|h| h.start >= s && h.end <= e).count();
            (cues, std::cmp::Reverse(s))
        })
        .unwrap_or((0, chars.len()));
    // Trim surrounding whitespace so the span is the sentence itself.
    let (mut s, mut e) = best;
    while s < e && chars[s].is_whitespace() {
        s += 1;
    }
    while e > s && chars[e - 1].is_whitespace() {
        e -= 1;
    }
    vec![span(s, e, EvidenceSource::Model)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_offsets_cover_the_text() {
        let s = sentences("第一句。第二句！第三");
        assert_eq!(s, vec![(0, 4), (4, 8), (8, 10)]);
    }

    #[test]
    fn evidence_prefers_rule_spans_then_the_cue_richest_sentence() {
        let text = "快递没到。我要去12315投诉！";
        let hits = scan(text, &Segmenter::new().segment(text));
        let ev = evidence(text, RiskFlag::Regulator, &hits);
        assert_eq!(ev[0].text, "12315");
        assert_eq!(ev[0].source, EvidenceSource::Rule);
        let ev = evidence(text, RiskFlag::MediaExposure, &hits);
        assert_eq!(ev[0].text, "我要去12315投诉！");
        assert_eq!(ev[0].source, EvidenceSource::Model);
    }
}
