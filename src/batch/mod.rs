//! File scoring for analysts: reading their files ([`input`]) and the
//! crash-safe, resumable scoring pipeline ([`score`]).

pub mod input;
pub mod report;
pub mod score;
pub mod summary;
