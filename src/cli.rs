//! Command-line interface: clap definitions and the command implementations.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kesu::model::{Encoder, EncoderSettings, ModelSource};
use kesu::text::Segmenter;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(
    name = "kesu",
    version,
    about = "客诉 — Chinese customer-complaint analysis"
)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax); logs go to stderr.
    #[arg(long, env = "KESU_LOG", default_value = "warn", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Model: a local folder (E5S1 `e5-small-q4.bin`, or `config.json` +
    /// `model.safetensors`, with `tokenizer.json`) or `hub:ORG/NAME`.
    /// Default: models/e5-small (fetched by scripts/fetch-model.sh).
    #[arg(long, env = "KESU_MODEL")]
    pub model: Option<String>,
    /// Longest input in tokens; longer texts are truncated and reported.
    #[arg(long, env = "KESU_MAX_TOKENS", default_value_t = 512)]
    pub max_tokens: usize,
    /// Texts per forward pass.
    #[arg(long, env = "KESU_BATCH_SIZE", default_value_t = 32)]
    pub batch_size: usize,
}

impl ModelArgs {
    fn source(&self) -> anyhow::Result<ModelSource> {
        Ok(match &self.model {
            Some(s) => s.parse::<ModelSource>()?,
            None => ModelSource::default(),
        })
    }

    fn load(&self) -> anyhow::Result<Encoder> {
        let source = self.source()?;
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        let settings = EncoderSettings {
            max_tokens: self.max_tokens,
            batch_size: self.batch_size,
        };
        Encoder::load(&source, settings).with_context(|| format!("loading model {source}"))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print sentence embeddings as JSON: one object for --text, else one per stdin line.
    Embed {
        /// Text to embed; without it, read one text per line from stdin.
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Print the jieba segmentation (with the complaint-domain dictionary) as JSON.
    Segment {
        /// Text to segment; without it, read one text per line from stdin.
        #[arg(long)]
        text: Option<String>,
        /// An extra jieba user dictionary (`word [freq] [tag]` per line).
        #[arg(long, env = "KESU_USER_DICT")]
        user_dict: Option<PathBuf>,
    },
    /// Write the model as a Hugging Face folder (config.json, model.safetensors
    /// with dequantised f32 weights, tokenizer.json) for other runtimes.
    ExportModel {
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Serialize)]
struct EmbedOutput<'a> {
    embedding: &'a [f32],
    tokens: usize,
    truncated: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Embed { text, model } => embed(text, &model),
        Command::Segment { text, user_dict } => segment(text, user_dict),
        Command::ExportModel { out, model } => export_model(&out, &model),
    }
}

/// Lines of stdin with their 1-based numbers; a non-UTF-8 or empty line is an
/// error naming the line.
fn stdin_lines() -> impl Iterator<Item = anyhow::Result<(usize, String)>> {
    std::io::stdin()
        .lock()
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let n = i + 1;
            let line = line.with_context(|| format!("stdin line {n}: not valid UTF-8 text"))?;
            let line = line.trim_end_matches('\r').to_string();
            if line.trim().is_empty() {
                bail!("stdin line {n}: empty text");
            }
            Ok((n, line))
        })
}

fn embed(text: Option<String>, args: &ModelArgs) -> anyhow::Result<ExitCode> {
    let encoder = args.load()?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut write = |label: &str, e: &kesu::model::Embedding| -> anyhow::Result<()> {
        if e.truncated {
            tracing::warn!(
                input = label,
                tokens = e.tokens,
                "text truncated to fit the model"
            );
        }
        let record = EmbedOutput {
            embedding: &e.vector,
            tokens: e.tokens,
            truncated: e.truncated,
        };
        serde_json::to_writer(&mut out, &record)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    if let Some(text) = text {
        if text.trim().is_empty() {
            bail!("--text is empty");
        }
        let embedded = encoder.embed(&[&text])?;
        write("--text", &embedded[0])?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    // Batch stdin lines for throughput, flushing each batch so that lines
    // before a bad one are already written when it stops the run.
    let batch_size = encoder.settings().batch_size;
    let mut pending: Vec<(usize, String)> = Vec::with_capacity(batch_size);
    let mut flush = |pending: &mut Vec<(usize, String)>| -> anyhow::Result<()> {
        let texts: Vec<&str> = pending.iter().map(|(_, t)| t.as_str()).collect();
        for ((n, _), e) in pending.iter().zip(encoder.embed(&texts)?) {
            write(&format!("line {n}"), &e)?;
        }
        pending.clear();
        Ok(())
    };
    for line in stdin_lines() {
        match line {
            Ok(item) => {
                pending.push(item);
                if pending.len() == batch_size {
                    flush(&mut pending)?;
                }
            }
            Err(e) => {
                flush(&mut pending)?;
                return Err(e);
            }
        }
    }
    flush(&mut pending)?;
    Ok(ExitCode::SUCCESS)
}

fn segment(text: Option<String>, user_dict: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut segmenter = Segmenter::new();
    if let Some(path) = user_dict {
        segmenter.load_user_dict(&path)?;
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut print = |text: &str| -> anyhow::Result<()> {
        serde_json::to_writer(&mut out, &segmenter.segment(text))?;
        out.write_all(b"\n")?;
        Ok(())
    };
    match text {
        Some(text) => print(&text)?,
        None => {
            for line in stdin_lines() {
                print(&line?.1)?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn export_model(out: &std::path::Path, args: &ModelArgs) -> anyhow::Result<ExitCode> {
    let source = args.source()?;
    let written = kesu::model::source::export_hf(&source, out)
        .with_context(|| format!("exporting {source} to {}", out.display()))?;
    eprintln!("wrote {written} tensors to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
