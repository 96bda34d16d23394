//! The local transformer: weights loading (E5S1 or safetensors), the
//! multilingual-e5-small encoder in candle, and (later) the task heads.

pub mod bert;
pub mod e5s1;
pub mod encoder;
pub mod heads;
pub mod layer;
pub mod ops;
pub mod source;

pub use encoder::{Embedding, Encoder, EncoderSettings, Tokenized};
pub use source::{ModelFiles, ModelSource, Weights};

use std::path::PathBuf;

/// Everything that can go wrong while finding, reading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file is truncated: {what} needs bytes past offset {offset}, file has {len}")]
    Truncated {
        what: String,
        offset: usize,
        len: usize,
    },
    #[error("model file is invalid: {0}")]
    Invalid(String),
    #[error("model not found: {0}")]
    NotFound(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model hub download failed: {0}")]
    Hub(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}
