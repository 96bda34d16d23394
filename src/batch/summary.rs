//! The end-of-job summary: category × intensity counts, motives, risk
//! levels, flags and the top flagged complaints. Kept in the job's progress
//! file, so a resumed job's summary covers every row.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::analyze::Analysis;
use crate::taxonomy::{Category, Intensity, Label, Motive, RiskFlag, RiskLevel};

/// One flagged complaint in the summary's top list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopFlagged {
    pub id: Option<String>,
    pub level: RiskLevel,
    pub category: Category,
    pub intensity: u8,
    pub flags: Vec<RiskFlag>,
    /// Highest flag probability (ties between levels are broken by it).
    pub score: f32,
    /// The evidence spans, joined.
    pub evidence: String,
}

/// Counts over a scored file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub scored: u64,
    pub bad_rows: u64,
    /// Category id → counts for intensity 0..=3.
    pub category_by_intensity: BTreeMap<String, [u64; 4]>,
    pub motives: BTreeMap<String, u64>,
    pub risk_levels: BTreeMap<String, u64>,
    pub flags: BTreeMap<String, u64>,
    pub truncated: u64,
    pub top_flagged: Vec<TopFlagged>,
}

const TOP: usize = 20;

impl Summary {
    pub fn new(bad_rows: u64) -> Self {
        Self {
            scored: 0,
            bad_rows,
            category_by_intensity: Category::ALL
                .iter()
                .map(|c| (c.id().to_string(), [0; 4]))
                .collect(),
            motives: Motive::ALL
                .iter()
                .map(|m| (m.id().to_string(), 0))
                .collect(),
            risk_levels: RiskLevel::ALL
                .iter()
                .map(|l| (l.id().to_string(), 0))
                .collect(),
            flags: RiskFlag::ALL
                .iter()
                .map(|f| (f.id().to_string(), 0))
                .collect(),
            truncated: 0,
            top_flagged: Vec::new(),
        }
    }

    /// Count one record.
    pub fn add(&mut self, a: &Analysis) {
        self.scored += 1;
        let level = usize::from(a.intensity.level.min(3));
        if let Some(row) = self.category_by_intensity.get_mut(a.category.label.id()) {
            row[level] += 1;
        }
        *self.motives.entry(a.motive.label.id().into()).or_default() += 1;
        *self
            .risk_levels
            .entry(a.risk.level.id().into())
            .or_default() += 1;
        for f in &a.risk.flags {
            *self.flags.entry(f.flag.id().into()).or_default() += 1;
        }
        self.truncated += u64::from(a.truncated);
        if a.risk.flagged {
            let score = a.risk.flags.iter().map(|f| f.score).fold(0.0, f32::max);
            self.top_flagged.push(TopFlagged {
                id: a.id.clone(),
                level: a.risk.level,
                category: a.category.label,
                intensity: a.intensity.level,
                flags: a.risk.flags.iter().map(|f| f.flag).collect(),
                score,
                evidence: a
                    .risk
                    .flags
                    .iter()
                    .flat_map(|f| f.evidence.iter().map(|e| e.text.as_str()))
                    .collect::<Vec<_>>()
                    .join(" | "),
            });
            // Keep the list short: most severe first, then most certain.
            if self.top_flagged.len() > 4 * TOP {
                self.trim();
            }
        }
    }

    /// Keep only the top flagged complaints.
    pub fn trim(&mut self) {
        self.top_flagged.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(b.flags.len().cmp(&a.flags.len()))
                .then(b.score.total_cmp(&a.score))
        });
        self.top_flagged.truncate(TOP);
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} complaints scored, {} bad rows set aside, {} truncated",
            self.scored, self.bad_rows, self.truncated
        )?;
        writeln!(
            f,
            "\n{:<24} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "category × intensity",
            Intensity::ALL[0].id(),
            Intensity::ALL[1].id().chars().take(7).collect::<String>(),
            Intensity::ALL[2].id(),
            Intensity::ALL[3].id(),
            "total"
        )?;
        for c in Category::ALL {
            let row = self.category_by_intensity[c.id()];
            writeln!(
                f,
                "{:<24} {:>7} {:>7} {:>7} {:>7} {:>7}",
                c.id(),
                row[0],
                row[1],
                row[2],
                row[3],
                row.iter().sum::<u64>()
            )?;
        }
        let line = |map: &BTreeMap<String, u64>, order: Vec<&str>| -> String {
            order
                .iter()
                .map(|k| format!("{k} {}", map.get(*k).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        writeln!(
            f,
            "\nmotives: {}",
            line(&self.motives, Motive::ALL.iter().map(|m| m.id()).collect())
        )?;
        writeln!(
            f,
            "risk levels: {}",
            line(
                &self.risk_levels,
                RiskLevel::ALL.iter().map(|l| l.id()).collect()
            )
        )?;
        writeln!(
            f,
            "flags: {}",
            line(&self.flags, RiskFlag::ALL.iter().map(|l| l.id()).collect())
        )?;
        if !self.top_flagged.is_empty() {
            writeln!(f, "\ntop flagged:")?;
            for t in self.top_flagged.iter().take(10) {
                let flags: Vec<&str> = t.flags.iter().map(|f| f.id()).collect();
                let evidence: String = t.evidence.chars().take(40).collect();
                writeln!(
                    f,
                    "  {:<12} {:<8} {:<22} {}  「{evidence}」",
                    t.id.as_deref().unwrap_or("-"),
                    t.level.id(),
                    t.category.id(),
                    flags.join(",")
                )?;
            }
        }
        Ok(())
    }
}
