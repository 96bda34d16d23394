//! Quality figures: accuracy and macro-F1 per head, the category confusion
//! matrix, per-flag precision/recall/F1, flagged (high/critical) recall and
//! precision, and expected calibration error (ECE) of the scores.

use std::fmt;

use serde::Serialize;

use crate::analyze::Analysis;
use crate::dataset::LabelledComplaint;
use crate::taxonomy::{Category, Label, Motive, RiskFlag};

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// A single-label head.
#[derive(Debug, Clone, Serialize)]
pub struct HeadScore {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub ece: f64,
    pub classes: Vec<ClassScore>,
}

/// All figures of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub examples: usize,
    pub category: HeadScore,
    /// Rows gold, columns predicted, in `Category::ALL` order.
    pub category_confusion: Vec<Vec<usize>>,
    pub intensity: HeadScore,
    pub intensity_within_one: f64,
    pub motive: HeadScore,
    pub flags: Vec<ClassScore>,
    pub flags_macro_f1: f64,
    /// ECE of the per-flag probabilities over every (complaint, flag) pair,
    /// when the full distributions are given ([`flag_ece`]).
    pub flags_ece: Option<f64>,
    pub flagged_precision: f64,
    pub flagged_recall: f64,
    pub risk_level_accuracy: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

fn class_score(label: &str, tp: usize, fp: usize, fn_: usize) -> ClassScore {
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    ClassScore {
        label: label.to_string(),
        precision,
        recall,
        f1: f1(precision, recall),
        support: tp + fn_,
    }
}

/// Expected calibration error over 10 equal-width confidence bins.
pub fn ece(confidence: &[f32], correct: &[bool]) -> f64 {
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for (&c, &ok) in confidence.iter().zip(correct) {
        let b = ((c * 10.0) as usize).min(9);
        bins[b].0 += f64::from(c);
        bins[b].1 += if ok { 1.0 } else { 0.0 };
        bins[b].2 += 1;
    }
    let n = confidence.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|&(conf, acc, _)| (conf - acc).abs() / n)
        .sum::<f64>()
}

/// Score a single-label head from (gold index, predicted index, confidence).
fn head_score(labels: &[&str], rows: &[(usize, usize, f32)]) -> HeadScore {
    let classes: Vec<ClassScore> = labels
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let tp = rows.iter().filter(|r| r.0 == k && r.1 == k).count();
            let fp = rows.iter().filter(|r| r.0 != k && r.1 == k).count();
            let fn_ = rows.iter().filter(|r| r.0 == k && r.1 != k).count();
            class_score(l, tp, fp, fn_)
        })
        .collect();
    // Macro-F1 over the classes present in gold or predictions.
    let present: Vec<&ClassScore> = classes
        .iter()
        .enumerate()
        .filter(|(k, c)| c.support > 0 || rows.iter().any(|r| r.1 == *k))
        .map(|(_, c)| c)
        .collect();
    let macro_f1 = present.iter().map(|c| c.f1).sum::<f64>() / present.len().max(1) as f64;
    let correct: Vec<bool> = rows.iter().map(|r| r.0 == r.1).collect();
    let conf: Vec<f32> = rows.iter().map(|r| r.2).collect();
    HeadScore {
        accuracy: ratio(correct.iter().filter(|&&c| c).count(), rows.len()),
        macro_f1,
        ece: ece(&conf, &correct),
        classes,
    }
}

/// ECE of per-flag sigmoid probabilities, each (complaint, flag) pair a
/// binary prediction: confidence max(p, 1 − p), correct when p ≥ 0.5 matches gold.
pub fn flag_ece(gold: &[LabelledComplaint], flag_probs: &[Vec<f32>]) -> f64 {
    let mut conf = Vec::new();
    let mut correct = Vec::new();
    for (g, probs) in gold.iter().zip(flag_probs) {
        for (flag, &p) in RiskFlag::ALL.iter().zip(probs) {
            conf.push(p.max(1.0 - p));
            correct.push((p >= 0.5) == g.risk_flags.contains(flag));
        }
    }
    ece(&conf, &correct)
}

/// Compare predictions with gold labels (same order, same length).
pub fn evaluate(gold: &[LabelledComplaint], pred: &[Analysis]) -> EvalReport {
    assert_eq!(gold.len(), pred.len(), "one prediction per gold record");
    let ids = |all: &[&'static str]| all.to_vec();
    let cat_rows: Vec<_> = gold
        .iter()
        .zip(pred)
        .map(|(g, p)| {
            (
                g.category.index(),
                p.category.label.index(),
                p.category.score,
            )
        })
        .collect();
    let int_rows: Vec<_> = gold
        .iter()
        .zip(pred)
        .map(|(g, p)| {
            (
                usize::from(g.intensity),
                usize::from(p.intensity.level),
                p.intensity.score,
            )
        })
        .collect();
    let mot_rows: Vec<_> = gold
        .iter()
        .zip(pred)
        .map(|(g, p)| (g.motive.index(), p.motive.label.index(), p.motive.score))
        .collect();
    let cat_ids: Vec<&str> = Category::ALL.iter().map(|c| c.id()).collect();
    let int_ids = ids(&["0 calm", "1 dissatisfied", "2 angry", "3 extreme"]);
    let mot_ids: Vec<&str> = Motive::ALL.iter().map(|c| c.id()).collect();

    let mut confusion = vec![vec![0; Category::ALL.len()]; Category::ALL.len()];
    for &(g, p, _) in &cat_rows {
        confusion[g][p] += 1;
    }
    let flags: Vec<ClassScore> = RiskFlag::ALL
        .iter()
        .map(|&f| {
            let has_p = |p: &Analysis| p.risk.flags.iter().any(|x| x.flag == f);
            let tp = gold
                .iter()
                .zip(pred)
                .filter(|(g, p)| g.risk_flags.contains(&f) && has_p(p))
                .count();
            let fp = gold
                .iter()
                .zip(pred)
                .filter(|(g, p)| !g.risk_flags.contains(&f) && has_p(p))
                .count();
            let fn_ = gold
                .iter()
                .zip(pred)
                .filter(|(g, p)| g.risk_flags.contains(&f) && !has_p(p))
                .count();
            class_score(f.id(), tp, fp, fn_)
        })
        .collect();
    let present: Vec<&ClassScore> = flags
        .iter()
        .filter(|c| c.support > 0 || c.precision > 0.0)
        .collect();
    let flags_macro_f1 = present.iter().map(|c| c.f1).sum::<f64>() / present.len().max(1) as f64;
    let gold_flagged = |g: &LabelledComplaint| g.risk_level().is_flagged();
    let tp = gold
        .iter()
        .zip(pred)
        .filter(|(g, p)| gold_flagged(g) && p.risk.flagged)
        .count();
    let fp = gold
        .iter()
        .zip(pred)
        .filter(|(g, p)| !gold_flagged(g) && p.risk.flagged)
        .count();
    let fn_ = gold
        .iter()
        .zip(pred)
        .filter(|(g, p)| gold_flagged(g) && !p.risk.flagged)
        .count();
    EvalReport {
        examples: gold.len(),
        category: head_score(&cat_ids, &cat_rows),
        category_confusion: confusion,
        intensity: head_score(&int_ids, &int_rows),
        intensity_within_one: ratio(
            int_rows.iter().filter(|r| r.0.abs_diff(r.1) <= 1).count(),
            int_rows.len(),
        ),
        motive: head_score(&mot_ids, &mot_rows),
        flags,
        flags_macro_f1,
        flags_ece: None,
        flagged_precision: ratio(tp, tp + fp),
        flagged_recall: ratio(tp, tp + fn_),
        risk_level_accuracy: ratio(
            gold.iter()
                .zip(pred)
                .filter(|(g, p)| g.risk_level() == p.risk.level)
                .count(),
            gold.len(),
        ),
    }
}

/// A per-class table: title row, then P, R, F1 and support per class.
fn write_classes(f: &mut fmt::Formatter<'_>, title: &str, classes: &[ClassScore]) -> fmt::Result {
    writeln!(
        f,
        "\n{title:<32} {:>6} {:>6} {:>6} {:>5}",
        "P", "R", "F1", "n"
    )?;
    for c in classes {
        writeln!(
            f,
            "  {:<30} {:>6.3} {:>6.3} {:>6.3} {:>5}",
            c.label, c.precision, c.recall, c.f1, c.support
        )?;
    }
    Ok(())
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "examples: {}", self.examples)?;
        writeln!(
            f,
            "\n{:<12} {:>8} {:>9} {:>7}",
            "head", "accuracy", "macro-F1", "ECE"
        )?;
        for (name, h) in [
            ("category", &self.category),
            ("intensity", &self.intensity),
            ("motive", &self.motive),
        ] {
            writeln!(
                f,
                "{name:<12} {:>8.3} {:>9.3} {:>7.3}",
                h.accuracy, h.macro_f1, h.ece
            )?;
        }
        writeln!(
            f,
            "intensity within one level: {:.3}",
            self.intensity_within_one
        )?;
        writeln!(f, "\ncategory confusion (rows gold, columns predicted):")?;
        let short: Vec<String> = Category::ALL
            .iter()
            .map(|c| c.id().chars().take(6).collect())
            .collect();
        write!(f, "{:<24}", "")?;
        for s in &short {
            write!(f, "{s:>7}")?;
        }
        writeln!(f)?;
        for (c, row) in Category::ALL.iter().zip(&self.category_confusion) {
            write!(f, "{:<24}", c.id())?;
            for v in row {
                write!(f, "{v:>7}")?;
            }
            writeln!(f)?;
        }
        for (name, h) in [
            ("category", &self.category),
            ("intensity", &self.intensity),
            ("motive", &self.motive),
        ] {
            write_classes(f, &format!("{name}: class"), &h.classes)?;
        }
        write_classes(f, "risk flags: flag", &self.flags)?;
        writeln!(f, "risk-flag macro-F1: {:.3}", self.flags_macro_f1)?;
        if let Some(e) = self.flags_ece {
            writeln!(f, "risk-flag ECE (every complaint × flag): {e:.3}")?;
        }
        writeln!(f, "risk level accuracy: {:.3}", self.risk_level_accuracy)?;
        writeln!(
            f,
            "flagged (high/critical): recall {:.3}, precision {:.3}",
            self.flagged_recall, self.flagged_precision
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_is_zero_when_confidence_matches_accuracy() {
        assert!(ece(&[1.0, 1.0], &[true, true]) < 1e-9);
        let e = ece(&[0.9, 0.9], &[false, false]);
        assert!((e - 0.9).abs() < 1e-6, "{e}");
    }

    #[test]
    fn macro_f1_of_a_perfect_head_is_one() {
        let rows = vec![(0, 0, 0.9), (1, 1, 0.8), (2, 2, 0.7)];
        let h = head_score(&["a", "b", "c"], &rows);
        assert_eq!(h.macro_f1, 1.0);
        let rows = vec![(0, 1, 0.9), (1, 1, 0.8)];
        let h = head_score(&["a", "b"], &rows);
        assert!((h.accuracy - 0.5).abs() < 1e-9);
        assert!((h.macro_f1 - (0.0 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
    }
}
