//! kesu (客诉): Chinese customer-complaint analysis.
//!
//! Data flows one way: text → [`text`] (segmentation) → [`model`]
//! (tokenizer + multilingual-e5-small in candle) → heads/rules → [`analyze`]
//! → [`infer`] (batching queue, model threads) → [`http`] and the [`feed`].

pub mod analyze;
pub mod batch;
pub mod dataset;
pub mod eval;
pub mod feed;
pub mod http;
pub mod infer;
pub mod model;
pub mod risk;
pub mod taxonomy;
pub mod text;
pub mod train;
