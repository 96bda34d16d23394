//! Labelled complaint files (JSON Lines) for training and evaluation, in the
//! taxonomy's evaluation-record format.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::taxonomy::{Category, Intensity, Motive, RiskFlag, RiskLevel};

/// One labelled complaint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledComplaint {
    /// Record id; `FILE:LINE` when the file gives none.
    #[serde(default)]
    pub id: String,
    pub text: String,
    pub category: Category,
    pub intensity: u8,
    pub motive: Motive,
    #[serde(default)]
    pub risk_flags: Vec<RiskFlag>,
    /// Given in evaluation files; derived from flags and intensity when absent.
    #[serde(default)]
    pub risk_level: Option<RiskLevel>,
}

impl LabelledComplaint {
    pub fn intensity(&self) -> Intensity {
        Intensity::from_level(self.intensity).expect("validated on load")
    }

    /// The stated risk level, or the taxonomy rule applied to the labels.
    pub fn risk_level(&self) -> RiskLevel {
        self.risk_level
            .unwrap_or_else(|| RiskLevel::from_flags(&self.risk_flags, self.intensity()))
    }
}

/// A file that could not be read, naming the line.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
}

/// Read a JSON Lines file of labelled complaints; blank lines are skipped,
/// anything else that is not a valid record is an error naming its line.
pub fn read_labelled(path: &Path) -> Result<Vec<LabelledComplaint>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| DatasetError::Line {
            path: path.display().to_string(),
            line: i + 1,
            message,
        };
        let mut record: LabelledComplaint =
            serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        if record.id.is_empty() {
            let stem = path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            record.id = format!("{stem}:{}", i + 1);
        }
        if Intensity::from_level(record.intensity).is_none() {
            return Err(err(format!("intensity {} is not 0..=3", record.intensity)));
        }
        if record.text.trim().is_empty() {
            return Err(err("empty text".into()));
        }
        out.push(record);
    }
    Ok(out)
}
