//! kesu (客诉): Chinese customer-complaint analysis.
//!
//! Data flows one way: text → [`text`] (segmentation) → [`model`]
//! (tokenizer + multilingual-e5-small in candle) → heads/rules → analysis.

pub mod model;
pub mod text;
