//! The Analysis record: the one result type the CLI and the HTTP API return
//! (field names and types fixed by `../shared/taxonomy.md`).

use serde::{Deserialize, Serialize};

use crate::taxonomy::{Category, Motive, RiskFlag, RiskLevel};

/// A label with its calibrated probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scored<L> {
    pub label: L,
    pub score: f32,
}

/// Intensity: integer level 0..=3, its id and probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntensityResult {
    pub level: u8,
    pub label: crate::taxonomy::Intensity,
    pub score: f32,
}

/// Where a flag's evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// A rule cue matched this span.
    Rule,
    /// The model raised the flag without a rule cue; the span is the
    /// sentence it scored highest.
    Model,
}

/// A span of the original text, in character offsets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub source: EvidenceSource,
}

/// One raised risk flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlagResult {
    pub flag: RiskFlag,
    pub score: f32,
    pub evidence: Vec<Evidence>,
}

/// Risk level, whether it goes to the risk feed, and the flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Risk {
    pub level: RiskLevel,
    pub flagged: bool,
    pub flags: Vec<FlagResult>,
}

/// The model that produced a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub taxonomy: String,
}

/// Everything kesu says about one complaint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Analysis {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub category: Scored<Category>,
    pub intensity: IntensityResult,
    pub motive: Scored<Motive>,
    pub risk: Risk,
    pub model: ModelInfo,
    /// The text was longer than the model's window and was cut.
    pub truncated: bool,
}
