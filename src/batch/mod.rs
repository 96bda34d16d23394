//! File scoring for analysts: reading their files ([`input`]), more to come
//! (streaming, resume, summary).

pub mod input;
