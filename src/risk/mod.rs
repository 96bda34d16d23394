//! Risk: rule detectors with evidence spans, the combination of rules and the
//! model's flag probabilities, and the risk level.

pub mod rules;

pub use rules::{RuleHit, scan};
