//! kesu (客诉): Chinese customer-complaint analysis.
//!
//! Data flows one way: text → [`text`] (segmentation) → [`model`]
//! (tokenizer + multilingual-e5-small in candle) → heads/rules → analysis.

pub mod analyze;
pub mod dataset;
pub mod eval;
pub mod model;
pub mod risk;
pub mod taxonomy;
pub mod text;
pub mod train;
