//! Text handling before the model: Chinese word segmentation with a
//! complaint-domain dictionary (and, later, normalisation and PII masking).

pub mod amount;
pub mod segment;

pub use segment::{Segment, Segmenter};
