//! The file scorer: rows stream from the reader through a preparation
//! thread (segmentation, rules, tokenization — in parallel with the model)
//! to the model in length-bucketed chunks, and out to JSON Lines.
//!
//! Crash safety: each chunk's records (and bad rows) are appended with one
//! `write` of complete lines, then a progress file records how many input
//! rows and output bytes are done (written to a temporary file and renamed).
//! `--resume` truncates both outputs to the recorded sizes and skips the
//! recorded rows, so nothing is scored twice or lost, even after `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::input::{RowError, RowResult};
use super::summary::Summary;
use crate::analyze::{AnalyzeError, Job, Prepared};
use crate::infer::Engine;
use crate::taxonomy::Label;

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A bar when stderr is a terminal, plain lines every few seconds otherwise.
    Auto,
    Quiet,
}

/// What the output file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One Analysis record per line.
    Jsonl,
    /// Flattened columns, one row per complaint.
    Csv,
}

impl OutputFormat {
    /// `.csv` → CSV, anything else JSON Lines.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Self::Csv,
            _ => Self::Jsonl,
        }
    }
}

/// Columns of the CSV output.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "category",
    "category_score",
    "intensity",
    "intensity_label",
    "intensity_score",
    "motive",
    "motive_score",
    "risk_level",
    "flagged",
    "flags",
    "flag_scores",
    "evidence",
    "truncated",
    "model_version",
];

fn csv_row(a: &crate::analyze::Analysis) -> Vec<String> {
    let flags: Vec<&str> = a.risk.flags.iter().map(|f| f.flag.id()).collect();
    let scores: Vec<String> = a
        .risk
        .flags
        .iter()
        .map(|f| format!("{:.3}", f.score))
        .collect();
    let evidence: Vec<String> = a
        .risk
        .flags
        .iter()
        .flat_map(|f| {
            f.evidence
                .iter()
                .map(move |e| format!("{}:{}[{}..{}]", f.flag.id(), e.text, e.start, e.end))
        })
        .collect();
    vec![
        a.id.clone().unwrap_or_default(),
        a.category.label.id().to_string(),
        format!("{:.4}", a.category.score),
        a.intensity.level.to_string(),
        a.intensity.label.id().to_string(),
        format!("{:.4}", a.intensity.score),
        a.motive.label.id().to_string(),
        format!("{:.4}", a.motive.score),
        a.risk.level.id().to_string(),
        a.risk.flagged.to_string(),
        flags.join(";"),
        scores.join(";"),
        evidence.join("; "),
        a.truncated.to_string(),
        a.model.version.clone(),
    ]
}

/// Resolved settings of one scoring job.
#[derive(Debug, Clone)]
pub struct ScoreSettings {
    pub output: PathBuf,
    pub output_format: OutputFormat,
    pub errors: PathBuf,
    /// Rows per chunk (a chunk is written, and checkpointed, as a whole).
    pub chunk_rows: usize,
    pub resume: bool,
    pub progress: Progress,
    /// Rows expected, for the ETA (an estimate is fine).
    pub expected_rows: Option<u64>,
    /// Identifies the input in the progress file (path, size).
    pub input: PathBuf,
}

/// What a job did.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreOutcome {
    /// Complaints in the output (this run and any resumed one).
    pub scored: u64,
    /// Bad rows in the errors file (this run and any resumed one).
    pub failed: u64,
    /// Complaints scored by this run.
    pub scored_now: u64,
    /// Rows done by an earlier run and skipped by `--resume`.
    pub resumed: u64,
    pub seconds: f64,
    pub summary: Summary,
}

/// Errors that stop a job (bad rows do not).
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Analyze(#[from] AnalyzeError),
    #[error("cannot resume: {0}")]
    Resume(String),
}

/// The progress file beside the output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    input: String,
    input_bytes: u64,
    /// Input rows done (scored or set aside).
    rows: u64,
    output_bytes: u64,
    errors_bytes: u64,
    done: bool,
    summary: Summary,
}

/// `OUTPUT.progress.json`.
pub fn checkpoint_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".progress.json");
    PathBuf::from(name)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ScoreError + '_ {
    move |source| ScoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_checkpoint(path: &Path, cp: &Checkpoint) -> Result<(), ScoreError> {
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec(cp).expect("checkpoint serialises");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&json).map_err(io_err(&tmp))?;
    f.sync_data().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Open both outputs (fresh, or truncated to the checkpoint on resume) and
/// return the checkpoint to continue from.
fn open_outputs(settings: &ScoreSettings) -> Result<(File, File, Checkpoint), ScoreError> {
    let input_bytes = std::fs::metadata(&settings.input)
        .map_err(io_err(&settings.input))?
        .len();
    let fresh = Checkpoint {
        input: settings.input.display().to_string(),
        input_bytes,
        rows: 0,
        output_bytes: 0,
        errors_bytes: 0,
        done: false,
        summary: Summary::new(0),
    };
    let cp_path = checkpoint_path(&settings.output);
    let checkpoint = if settings.resume {
        let text = std::fs::read_to_string(&cp_path).map_err(|e| {
            ScoreError::Resume(format!(
                "no progress file {} ({e}); run without --resume",
                cp_path.display()
            ))
        })?;
        let cp: Checkpoint = serde_json::from_str(&text)
            .map_err(|e| ScoreError::Resume(format!("{}: {e}", cp_path.display())))?;
        if cp.input_bytes != input_bytes {
            return Err(ScoreError::Resume(format!(
                "the input changed since the interrupted run ({} bytes then, {input_bytes} now)",
                cp.input_bytes
            )));
        }
        cp
    } else {
        fresh
    };
    let open = |path: &Path, keep: u64| -> Result<File, ScoreError> {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(!settings.resume)
            .open(path)
            .map_err(io_err(path))?;
        // Drop whatever an interrupted run wrote after its last checkpoint.
        f.set_len(keep).map_err(io_err(path))?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).map_err(io_err(path))?;
        Ok(f)
    };
    let out = open(&settings.output, checkpoint.output_bytes)?;
    let errors = open(&settings.errors, checkpoint.errors_bytes)?;
    Ok((out, errors, checkpoint))
}

/// Score `rows` with `engine` into the outputs of `settings`.
pub fn score_rows(
    engine: &dyn Engine,
    rows: impl Iterator<Item = RowResult> + Send,
    settings: &ScoreSettings,
) -> Result<ScoreOutcome, ScoreError> {
    let started = Instant::now();
    let (mut out, mut errors, mut cp) = open_outputs(settings)?;
    let cp_path = checkpoint_path(&settings.output);
    let resumed = cp.rows;
    let scored_before = cp.summary.scored;
    if cp.done {
        return Ok(ScoreOutcome {
            scored: cp.summary.scored,
            failed: cp.summary.bad_rows,
            scored_now: 0,
            resumed,
            seconds: 0.0,
            summary: cp.summary,
        });
    }
    let chunk_rows = settings.chunk_rows.max(1);
    let mut progress = ProgressView::new(settings, cp.rows);

    type Chunk = Vec<Result<(super::input::InputRow, Prepared), RowError>>;
    let (tx, rx) = sync_channel::<Result<Chunk, AnalyzeError>>(2);
    std::thread::scope(|scope| -> Result<(), ScoreError> {
        // Preparation thread: read, skip what is done, prepare, send chunks.
        scope.spawn(move || {
            let mut rows = rows.skip(usize::try_from(resumed).unwrap_or(usize::MAX));
            loop {
                let mut chunk: Chunk = Vec::with_capacity(chunk_rows);
                for row in rows.by_ref().take(chunk_rows) {
                    chunk.push(match row {
                        Ok(row) => match engine.prepare(&row.text) {
                            Ok(p) => Ok((row, p)),
                            Err(e) => Err(RowError {
                                line: row.line,
                                reason: format!("cannot prepare: {e}"),
                            }),
                        },
                        Err(e) => Err(e),
                    });
                }
                if chunk.is_empty() || tx.send(Ok(chunk)).is_err() {
                    return;
                }
            }
        });
        for chunk in rx {
            let chunk = chunk?;
            let ids: Vec<Option<String>> = chunk
                .iter()
                .map(|r| {
                    r.as_ref()
                        .ok()
                        .map(|(row, _)| row.id.clone().unwrap_or_else(|| row.line.to_string()))
                })
                .collect();
            let jobs: Vec<Job<'_>> = chunk
                .iter()
                .zip(&ids)
                .filter_map(|(r, id)| {
                    r.as_ref().ok().map(|(row, prepared)| Job {
                        id: id.as_deref(),
                        text: &row.text,
                        prepared,
                    })
                })
                .collect();
            let records = engine.analyze(&jobs)?;
            let mut out_buf = Vec::with_capacity(records.len() * 512);
            match settings.output_format {
                OutputFormat::Jsonl => {
                    for record in &records {
                        serde_json::to_writer(&mut out_buf, record).expect("records serialise");
                        out_buf.push(b'\n');
                    }
                }
                OutputFormat::Csv => {
                    let mut w = csv::Writer::from_writer(&mut out_buf);
                    let io = |e: csv::Error| ScoreError::Io {
                        path: settings.output.clone(),
                        source: e.into(),
                    };
                    if cp.output_bytes == 0 {
                        w.write_record(CSV_COLUMNS).map_err(io)?;
                    }
                    for record in &records {
                        w.write_record(csv_row(record)).map_err(io)?;
                    }
                    w.flush().map_err(|e| ScoreError::Io {
                        path: settings.output.clone(),
                        source: e,
                    })?;
                }
            }
            for record in &records {
                cp.summary.add(record);
            }
            let mut err_buf = Vec::new();
            for bad in chunk.iter().filter_map(|r| r.as_ref().err()) {
                serde_json::to_writer(&mut err_buf, bad).expect("row errors serialise");
                err_buf.push(b'\n');
            }
            // One write of complete lines per file, then the checkpoint.
            out.write_all(&out_buf).map_err(io_err(&settings.output))?;
            errors
                .write_all(&err_buf)
                .map_err(io_err(&settings.errors))?;
            out.sync_data().map_err(io_err(&settings.output))?;
            errors.sync_data().map_err(io_err(&settings.errors))?;
            cp.rows += chunk.len() as u64;
            cp.summary.bad_rows += (chunk.len() - records.len()) as u64;
            cp.output_bytes += out_buf.len() as u64;
            cp.errors_bytes += err_buf.len() as u64;
            cp.summary.trim();
            write_checkpoint(&cp_path, &cp)?;
            progress.advance(cp.rows, cp.summary.bad_rows);
        }
        Ok(())
    })?;
    cp.done = true;
    write_checkpoint(&cp_path, &cp)?;
    progress.finish(cp.rows);
    Ok(ScoreOutcome {
        scored: cp.summary.scored,
        failed: cp.summary.bad_rows,
        scored_now: cp.summary.scored - scored_before,
        resumed,
        seconds: started.elapsed().as_secs_f64(),
        summary: cp.summary,
    })
}

/// A bar on a terminal, plain lines every 10 s otherwise, nothing when quiet.
struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    plain: bool,
    started: Instant,
    last_line: Instant,
    start_rows: u64,
    expected: Option<u64>,
}

impl ProgressView {
    fn new(settings: &ScoreSettings, done: u64) -> Self {
        let quiet = settings.progress == Progress::Quiet;
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = match settings.expected_rows {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::no_length(),
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(done);
            bar
        });
        Self {
            bar,
            plain: !quiet && !terminal,
            started: Instant::now(),
            last_line: Instant::now(),
            start_rows: done,
            expected: settings.expected_rows,
        }
    }

    fn advance(&mut self, rows: u64, failed: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
            if failed > 0 {
                bar.set_message(format!("{failed} bad rows"));
            }
        } else if self.plain && self.last_line.elapsed() >= Duration::from_secs(10) {
            self.last_line = Instant::now();
            let rate = (rows - self.start_rows) as f64 / self.started.elapsed().as_secs_f64();
            let eta = self
                .expected
                .filter(|&n| n > rows && rate > 0.0)
                .map_or_else(String::new, |n| {
                    format!(", eta {:.0} s", (n - rows) as f64 / rate)
                });
            eprintln!("kesu score: {rows} rows done ({rate:.1}/s{eta}), {failed} bad");
        }
    }

    fn finish(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
            bar.finish();
        }
    }
}

/// Lines in a file (an estimate of its rows for the ETA), counted fast.
pub fn count_lines(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}
