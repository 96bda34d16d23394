//! Peak memory of the file scorer does not grow with the file: scores a
//! generated CSV of N rows through the real reader, pipeline, writer and
//! progress file, with a fast stand-in for the model, and prints the process's
//! peak RSS (VmHWM).
//!
//! cargo run --release --example score_memory -- 10000
//! cargo run --release --example score_memory -- 1000000

use std::io::Write;

use kesu::analyze::{
    Analysis, AnalyzeError, IntensityResult, Job, ModelInfo, Prepared, Risk, Scored,
};
use kesu::batch::input::{Columns, TextEncoding, read_rows};
use kesu::batch::score::{OutputFormat, Progress, ScoreSettings, score_rows};
use kesu::infer::Engine;
use kesu::model::Tokenized;
use kesu::taxonomy::{Category, Intensity, Label, Motive, RiskLevel};

/// Stands in for the model: a record per complaint, no forward pass.
struct StandIn(ModelInfo);

impl Engine for StandIn {
    fn prepare(&self, text: &str) -> Result<Prepared, AnalyzeError> {
        Ok(Prepared {
            tokenized: Tokenized {
                ids: text.chars().map(|c| c as u32).take(512).collect(),
                truncated: false,
            },
            hits: vec![],
            features: vec![],
        })
    }

    fn analyze(&self, jobs: &[Job<'_>]) -> Result<Vec<Analysis>, AnalyzeError> {
        Ok(jobs
            .iter()
            .map(|j| Analysis {
                id: j.id.map(str::to_string),
                category: Scored {
                    label: Category::ALL[j.text.len() % Category::ALL.len()],
                    score: 0.5,
                },
                intensity: IntensityResult {
                    level: 1,
                    label: Intensity::Dissatisfied,
                    score: 0.5,
                },
                motive: Scored {
                    label: Motive::Resolution,
                    score: 0.5,
                },
                risk: Risk {
                    level: RiskLevel::Low,
                    flagged: false,
                    flags: vec![],
                },
                model: self.0.clone(),
                truncated: false,
            })
            .collect())
    }

    fn model_info(&self) -> &ModelInfo {
        &self.0
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::args().nth(1).map_or(Ok(10_000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("complaints.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
        writeln!(f, "id,received_at,text")?;
        let texts = [
            "快递三天没到，客服电话一直打不通",
            "退款申请提交一周了还没到账，请尽快处理",
            "APP升级后一直闪退，订单付了钱却显示失败",
            "电费账单比上月多了两百，没有任何说明",
        ];
        for i in 0..rows {
            writeln!(
                f,
                "c{i},2026-01-{:02},{}（{i}）",
                i % 28 + 1,
                texts[i % texts.len()]
            )?;
        }
    }
    let before = peak_rss_kib();
    let settings = ScoreSettings {
        output: dir.path().join("scored.jsonl"),
        output_format: OutputFormat::Jsonl,
        errors: dir.path().join("scored.errors.jsonl"),
        chunk_rows: 512,
        resume: false,
        progress: Progress::Quiet,
        expected_rows: None,
        input: input.clone(),
    };
    let started = std::time::Instant::now();
    let engine = StandIn(ModelInfo {
        name: "stand-in".into(),
        version: "0".into(),
        taxonomy: "v1".into(),
    });
    let outcome = score_rows(
        &engine,
        read_rows(&input, None, TextEncoding::Auto, &Columns::default())?,
        &settings,
    )?;
    println!(
        "{{\"rows\": {rows}, \"scored\": {}, \"seconds\": {:.1}, \"input_mib\": {:.1}, \"output_mib\": {:.1}, \"peak_rss_kib_before\": {before}, \"peak_rss_kib\": {}}}",
        outcome.scored,
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&input)?.len() as f64 / 1048576.0,
        std::fs::metadata(&settings.output)?.len() as f64 / 1048576.0,
        peak_rss_kib()
    );
    Ok(())
}
