//! Sentence encoder: `"query: "` prefix, XLM-R unigram tokenizer, the BERT
//! encoder in candle, mean pooling over real tokens, L2 normalisation.
//!
//! Everything here is synchronous and CPU-bound: callers in async code must run
//! it on a dedicated thread (see `infer`), never on tokio worker threads.

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;

use super::bert::Bert;
use tokenizers::{Tokenizer, TruncationParams};

use super::{ModelError, ModelSource};

/// The prefix multilingual-e5 expects on queries (and on classification inputs).
pub const QUERY_PREFIX: &str = "query: ";

/// Runtime choices for the encoder.
#[derive(Debug, Clone)]
pub struct EncoderSettings {
    /// Longest input in tokens, `<s>` and `</s>` included; longer texts are truncated.
    pub max_tokens: usize,
    /// Most texts per forward pass.
    pub batch_size: usize,
    /// Most padded tokens (longest × texts) per forward pass: on a CPU,
    /// padding is pure waste, so length-sorted chunks are also cut by tokens.
    pub batch_tokens: usize,
    /// Leave out the top n encoder layers (the analyzer runs its own
    /// fine-tuned copies of them); 0 runs the whole encoder.
    pub drop_top_layers: usize,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            batch_size: 32,
            batch_tokens: 2048,
            drop_top_layers: 0,
        }
    }
}

/// One text, tokenized and ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    /// Tokens were cut to fit `max_tokens`.
    pub truncated: bool,
}

/// A sentence embedding with what the caller needs to know about its input.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// L2-normalised mean of the last hidden states over real tokens.
    pub vector: Vec<f32>,
    /// Tokens fed to the model, specials included.
    pub tokens: usize,
    pub truncated: bool,
}

/// multilingual-e5-small in candle.
pub struct Encoder {
    model: Bert,
    tokenizer: Tokenizer,
    config: Config,
    device: Device,
    settings: EncoderSettings,
}

impl Encoder {
    /// Resolve, read and build the model on the CPU.
    pub fn load(source: &ModelSource, settings: EncoderSettings) -> Result<Self, ModelError> {
        let started = Instant::now();
        let files = source.resolve()?;
        let device = Device::Cpu;
        // Parsing the 17 MB tokenizer.json and dequantising the weights are
        // independent: overlap them to shorten start-up.
        let (weights, tokenizer) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| {
                Tokenizer::from_file(&files.tokenizer).map_err(|e| {
                    ModelError::Tokenizer(format!("{}: {e}", files.tokenizer.display()))
                })
            });
            let weights = files.weights.load(&device);
            let tokenizer = tokenizer.join().expect("tokenizer loading does not panic");
            (weights, tokenizer)
        });
        let (mut weights, mut tokenizer) = (weights?, tokenizer?);
        let total = weights.config.num_hidden_layers;
        weights.config.num_hidden_layers =
            total.checked_sub(settings.drop_top_layers).ok_or_else(|| {
                ModelError::Invalid(format!(
                    "cannot leave out {} layers of a {total}-layer encoder",
                    settings.drop_top_layers
                ))
            })?;
        let vb = VarBuilder::from_tensors(weights.tensors, DType::F32, &device);
        let model = Bert::load(vb, &weights.config)?;
        let max_tokens = settings
            .max_tokens
            .min(weights.config.max_position_embeddings);
        if max_tokens < 3 {
            return Err(ModelError::Invalid(format!(
                "max_tokens {max_tokens} leaves no room for text"
            )));
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > weights.config.vocab_size {
            return Err(ModelError::Invalid(format!(
                "tokenizer has {vocab} pieces, the embedding table only {}",
                weights.config.vocab_size
            )));
        }
        tracing::info!(
            model = %source,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "encoder loaded"
        );
        Ok(Self {
            model,
            tokenizer,
            config: weights.config,
            device,
            settings: EncoderSettings {
                max_tokens,
                ..settings
            },
        })
    }

    /// Embedding width (384 for e5-small).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// The BERT configuration the weights were loaded with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// Tokenize one text with the query prefix, truncated to `max_tokens`.
    pub fn tokenize(&self, text: &str) -> Result<Tokenized, ModelError> {
        let encoding = self
            .tokenizer
            .encode(format!("{QUERY_PREFIX}{text}"), true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(Tokenized {
            ids: encoding.get_ids().to_vec(),
            truncated: !encoding.get_overflowing().is_empty(),
        })
    }

    /// Embed texts in length-sorted batches; results come back in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, ModelError> {
        let tokenized = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        let lengths: Vec<usize> = tokenized.iter().map(|t| t.ids.len()).collect();
        by_length(
            &lengths,
            self.settings.batch_size,
            self.settings.batch_tokens,
            |chunk| {
                let batch: Vec<&Tokenized> = chunk.iter().map(|&i| &tokenized[i]).collect();
                let vectors = self.embed_tokenized(&batch)?;
                Ok(vectors
                    .into_iter()
                    .zip(&batch)
                    .map(|(vector, t)| Embedding {
                        vector,
                        tokens: t.ids.len(),
                        truncated: t.truncated,
                    })
                    .collect())
            },
        )
    }

    /// One forward pass over a padded batch; returns normalised mean-pooled vectors.
    pub fn embed_tokenized(&self, batch: &[&Tokenized]) -> Result<Vec<Vec<f32>>, ModelError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (hidden, mask) = self.forward(batch)?;
        let pooled = mean_pool(&hidden, &mask)?;
        Ok(l2_normalize(&pooled)?.to_vec2::<f32>()?)
    }

    /// Last hidden states `[batch, seq, hidden]` of a right-padded batch, and
    /// the attention mask it was run with (callers pool with it).
    pub fn forward(&self, batch: &[&Tokenized]) -> Result<(Tensor, Tensor), ModelError> {
        let seq = batch.iter().map(|t| t.ids.len()).max().unwrap_or(0);
        let pad = self.config.pad_token_id as u32;
        let mut ids = Vec::with_capacity(batch.len() * seq);
        for t in batch {
            ids.extend_from_slice(&t.ids);
            ids.extend(std::iter::repeat_n(pad, seq - t.ids.len()));
        }
        let ids = Tensor::from_vec(ids, (batch.len(), seq), &self.device)?;
        let mask = self.attention_mask(batch)?;
        let hidden = self.model.forward(&ids, &mask)?;
        Ok((hidden, mask))
    }

    /// `[batch, seq]` u32 mask, 1 for real tokens.
    fn attention_mask(&self, batch: &[&Tokenized]) -> Result<Tensor, ModelError> {
        let seq = batch.iter().map(|t| t.ids.len()).max().unwrap_or(0);
        let mut mask = Vec::with_capacity(batch.len() * seq);
        for t in batch {
            mask.extend(std::iter::repeat_n(1u32, t.ids.len()));
            mask.extend(std::iter::repeat_n(0u32, seq - t.ids.len()));
        }
        Ok(Tensor::from_vec(mask, (batch.len(), seq), &self.device)?)
    }
}

/// Run `f` over items in length-sorted chunks of at most `max_items` items
/// and `max_tokens` padded tokens, with at most 25 % padding (an over-long
/// item runs alone) and return its results in input order. `f` gets the indices of
/// one chunk and returns one result per index, in that order.
pub fn by_length<R, E>(
    lengths: &[usize],
    max_items: usize,
    max_tokens: usize,
    mut f: impl FnMut(&[usize]) -> Result<Vec<R>, E>,
) -> Result<Vec<R>, E> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut out: Vec<Option<R>> = (0..lengths.len()).map(|_| None).collect();
    let mut rest = order.as_slice();
    while !rest.is_empty() {
        // Ascending order: the chunk's last item is its longest.
        // Also stop where padding would pass a quarter of the chunk: on a
        // CPU a padded token costs as much as a real one.
        let mut n = 1;
        let mut real = lengths[rest[0]];
        while n < rest.len() && n < max_items {
            let next = lengths[rest[n]];
            let padded = next * (n + 1);
            if padded > max_tokens || padded * 4 > (real + next) * 5 {
                break;
            }
            real += next;
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let results = f(chunk)?;
        assert_eq!(results.len(), chunk.len(), "one result per index");
        for (&i, r) in chunk.iter().zip(results) {
            out[i] = Some(r);
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every index is in exactly one chunk"))
        .collect())
}

/// Mean of `hidden [b, s, h]` over positions where `mask [b, s]` is 1.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?;
    summed.broadcast_div(&counts)
}

/// Divide each row by its L2 norm.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    x.broadcast_div(&norm.clamp(1e-12, f32::MAX)?)
}

#[cfg(test)]
mod tests {
    use super::by_length;

    fn chunks(lengths: &[usize], max_items: usize, max_tokens: usize) -> Vec<Vec<usize>> {
        let mut seen = Vec::new();
        let out = by_length(lengths, max_items, max_tokens, |chunk| {
            seen.push(chunk.iter().map(|&i| lengths[i]).collect::<Vec<_>>());
            Ok::<_, ()>(chunk.to_vec())
        })
        .unwrap();
        // Results come back in input order.
        assert_eq!(out, (0..lengths.len()).collect::<Vec<_>>());
        seen
    }

    #[test]
    fn chunks_are_sorted_and_cut_by_count_tokens_and_padding() {
        assert_eq!(
            chunks(&[30, 10, 11, 12, 29, 31], 3, 1000),
            vec![vec![10, 11, 12], vec![29, 30, 31]]
        );
        // 10 then 30: padding 40 of 80 tokens, over a quarter.
        assert_eq!(chunks(&[10, 30], 8, 1000), vec![vec![10], vec![30]]);
        // Token budget: 3 × 40 > 100; an over-long item runs alone.
        assert_eq!(
            chunks(&[40, 40, 40, 500], 8, 100),
            vec![vec![40, 40], vec![40], vec![500]]
        );
    }
}
