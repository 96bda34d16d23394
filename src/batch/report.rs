//! `--report report.html`: the job summary as one self-contained HTML page
//! (inline CSS and SVG charts; no script, no external request).

use std::fmt::Write;

use super::summary::Summary;
use crate::taxonomy::{Category, Intensity, Label, Motive, RiskFlag, RiskLevel};

/// Escape text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const INTENSITY_COLOURS: [&str; 4] = ["#9ecae1", "#fdd0a2", "#fd8d3c", "#d62728"];
const LEVEL_COLOURS: [&str; 4] = ["#9ecae1", "#fdd0a2", "#fd8d3c", "#d62728"];

/// Horizontal bars, each split into coloured segments.
fn stacked_bars(rows: &[(String, Vec<u64>)], colours: &[&str], legend: &[String]) -> String {
    let max = rows
        .iter()
        .map(|(_, v)| v.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (label_w, bar_w, row_h) = (190.0, 520.0, 22.0);
    let height = row_h * rows.len() as f64 + 40.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" role="img">"#,
        w = label_w + bar_w + 80.0
    );
    for (i, (label, values)) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end" font-size="12">{}</text>"#,
            label_w - 6.0,
            y + 15.0,
            escape(label)
        );
        let mut x = label_w;
        for (k, &v) in values.iter().enumerate() {
            let w = bar_w * v as f64 / max as f64;
            if w > 0.0 {
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{}" width="{w:.1}" height="{}" fill="{}"><title>{}: {v}</title></rect>"#,
                    y + 3.0,
                    row_h - 6.0,
                    colours[k % colours.len()],
                    escape(legend.get(k).map_or("", String::as_str))
                );
            }
            x += w;
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="12">{}</text>"#,
            x + 4.0,
            y + 15.0,
            values.iter().sum::<u64>()
        );
    }
    let ly = row_h * rows.len() as f64 + 20.0;
    let mut lx = label_w;
    for (k, name) in legend.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            ly - 10.0,
            colours[k % colours.len()],
            lx + 16.0,
            ly,
            escape(name)
        );
        lx += 30.0 + 8.0 * name.len() as f64;
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn html_report(summary: &Summary, title: &str) -> String {
    let intensity_legend: Vec<String> = Intensity::ALL.iter().map(|i| i.id().to_string()).collect();
    let categories: Vec<(String, Vec<u64>)> = Category::ALL
        .iter()
        .map(|c| {
            (
                format!("{} {}", c.zh(), c.id()),
                summary.category_by_intensity[c.id()].to_vec(),
            )
        })
        .collect();
    let single = |map: &std::collections::BTreeMap<String, u64>, ids: Vec<(&str, &str)>| {
        ids.into_iter()
            .map(|(id, zh)| {
                (
                    format!("{zh} {id}"),
                    vec![map.get(id).copied().unwrap_or(0)],
                )
            })
            .collect::<Vec<_>>()
    };
    let motives = single(
        &summary.motives,
        Motive::ALL.iter().map(|m| (m.id(), m.zh())).collect(),
    );
    let flags = single(
        &summary.flags,
        RiskFlag::ALL.iter().map(|f| (f.id(), f.zh())).collect(),
    );
    let levels: Vec<(String, Vec<u64>)> = RiskLevel::ALL
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let mut v = vec![0; 4];
            v[k] = summary.risk_levels.get(l.id()).copied().unwrap_or(0);
            (format!("{} {}", l.zh(), l.id()), v)
        })
        .collect();
    let level_legend: Vec<String> = RiskLevel::ALL.iter().map(|l| l.id().to_string()).collect();
    let mut top = String::new();
    for t in &summary.top_flagged {
        let flags: Vec<&str> = t.flags.iter().map(|f| f.id()).collect();
        let _ = write!(
            top,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(t.id.as_deref().unwrap_or("")),
            t.level.id(),
            t.level.id(),
            t.category.id(),
            t.intensity,
            escape(&flags.join(", ")),
            escape(&t.evidence)
        );
    }
    format!(
        r#"<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 4px 8px; font-size: 13px; }}
.critical {{ color: #b00; font-weight: bold; }} .high {{ color: #d60; font-weight: bold; }}
.figures span {{ margin-right: 2em; }}
</style></head><body>
<h1>{title}</h1>
<p class="figures"><span>scored: <b>{scored}</b></span><span>bad rows: <b>{bad}</b></span><span>truncated: <b>{truncated}</b></span></p>
<h2>Category × intensity</h2>
{categories}
<h2>Motive</h2>
{motives}
<h2>Risk level</h2>
{levels}
<h2>Risk flags</h2>
{flags}
<h2>Top flagged complaints</h2>
<table><tr><th>id</th><th>level</th><th>category</th><th>intensity</th><th>flags</th><th>evidence</th></tr>
{top}</table>
</body></html>
"#,
        title = escape(title),
        scored = summary.scored,
        bad = summary.bad_rows,
        truncated = summary.truncated,
        categories = stacked_bars(&categories, &INTENSITY_COLOURS, &intensity_legend),
        motives = stacked_bars(&motives, &["#3182bd"], &["complaints".to_string()]),
        levels = stacked_bars(&levels, &LEVEL_COLOURS, &level_legend),
        flags = stacked_bars(&flags, &["#756bb1"], &["complaints".to_string()]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::summary::TopFlagged;

    #[test]
    fn the_page_is_self_contained_and_escapes_complaint_text() {
        let mut s = Summary::new(2);
        s.scored = 3;
        s.category_by_intensity
            .insert("billing_fees".into(), [1, 0, 2, 0]);
        s.top_flagged.push(TopFlagged {
            id: Some("<b>x</b>".into()),
            level: RiskLevel::High,
            category: Category::BillingFees,
            intensity: 2,
            flags: vec![RiskFlag::Regulator],
            score: 0.9,
            evidence: "<script>alert(1)</script>12315".into(),
        });
        let page = html_report(&s, "report");
        assert!(page.contains("<svg"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;12315"));
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"));
        // No external request: the only URL is the SVG namespace.
        let namespaces = page
            .matches(r#"xmlns="http://www.w3.org/2000/svg""#)
            .count();
        assert_eq!(page.matches("http").count(), namespaces);
    }
}
