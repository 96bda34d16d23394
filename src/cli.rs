//! Command-line interface: clap definitions and the command implementations.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kesu::analyze::{Analyzer, default_heads_dir};
use kesu::model::{Encoder, EncoderSettings, ModelSource};
use kesu::text::Segmenter;
use kesu::train::TrainSettings;
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
    /// Most texts per forward pass.
    #[arg(long, env = "KESU_BATCH_SIZE", default_value_t = 32)]
    pub batch_size: usize,
    /// Most padded tokens (longest text × texts) per forward pass.
    #[arg(long, env = "KESU_BATCH_TOKENS", default_value_t = 2048)]
    pub batch_tokens: usize,
}

impl ModelArgs {
    fn source(&self) -> anyhow::Result<ModelSource> {
        Ok(match &self.model {
            Some(s) => s.parse::<ModelSource>()?,
            None => ModelSource::default(),
        })
    }

    fn settings(&self) -> anyhow::Result<EncoderSettings> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.batch_tokens == 0 {
            bail!("--batch-tokens must be at least 1");
        }
        Ok(EncoderSettings {
            max_tokens: self.max_tokens,
            batch_size: self.batch_size,
            batch_tokens: self.batch_tokens,
            drop_top_layers: 0,
        })
    }

    fn load(&self) -> anyhow::Result<Encoder> {
        let source = self.source()?;
        Encoder::load(&source, self.settings()?).with_context(|| format!("loading model {source}"))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (analysis API, risk feed, metrics).
    Serve(ServeArgs),
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
    /// Analyse one complaint and print its Analysis record as JSON.
    Analyze {
        /// The complaint text.
        #[arg(long)]
        text: String,
        /// Id echoed in the record.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        analyzer: AnalyzerArgs,
    },
    /// Score a file of complaints (JSON Lines, CSV, TSV, Excel .xlsx) into
    /// Analysis records (JSON Lines), in input order; bad rows go to an errors file.
    Score(ScoreArgs),
    /// Fine-tune the top encoder layers and the heads on labelled complaints.
    Train {
        /// Labelled JSON Lines files (taxonomy evaluation-record format).
        #[arg(long, required = true, num_args = 1..)]
        data: Vec<PathBuf>,
        /// Where to write kesu-heads.safetensors and kesu-heads.json.
        #[arg(long, default_value = "models")]
        out: PathBuf,
        #[arg(long, default_value_t = TrainSettings::default().epochs)]
        epochs: usize,
        #[arg(long, default_value_t = TrainSettings::default().tuned_layers)]
        tuned_layers: usize,
        /// Learned attention pooling beside mean pooling (true/false).
        #[arg(long, default_value_t = TrainSettings::default().attention_pool, action = clap::ArgAction::Set)]
        attention_pool: bool,
        #[arg(long, default_value_t = TrainSettings::default().seed)]
        seed: u64,
        /// Head sets trained from different seeds and averaged (needs --tuned-layers 0).
        #[arg(long, default_value_t = TrainSettings::default().members)]
        members: usize,
        /// Write the run report (settings, losses, temperatures) as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Keep frozen-layer hidden states here between runs.
        #[arg(long)]
        cache: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Evaluate on a labelled JSON Lines file: accuracy, macro-F1, confusion, flags, ECE.
    Eval {
        #[arg(long)]
        data: PathBuf,
        /// Also write the figures as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        analyzer: AnalyzerArgs,
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

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Input file: .jsonl, .csv, .tsv or .xlsx (or say which with --format).
    #[arg(long)]
    pub input: PathBuf,
    /// Output file: Analysis records as JSON Lines, or flattened columns
    /// when it ends in `.csv` (or with --output-format).
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, value_enum)]
    pub output_format: Option<kesu::batch::score::OutputFormat>,
    /// Bad rows (line and reason) as JSON Lines; default OUTPUT with `.errors.jsonl`.
    #[arg(long)]
    pub errors: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub format: Option<kesu::batch::input::InputFormat>,
    /// Text encoding of CSV/TSV/JSONL (a BOM always wins).
    #[arg(long, value_enum, default_value = "auto")]
    pub encoding: kesu::batch::input::TextEncoding,
    /// Column (header name or 1-based number) with the complaint text;
    /// default: a header named text, content, 内容, 投诉内容 …
    #[arg(long)]
    pub text_col: Option<String>,
    /// Column with the complaint id (default: id, 编号, 工单号 … if present; else the line number).
    #[arg(long)]
    pub id_col: Option<String>,
    /// Column with the time received.
    #[arg(long)]
    pub time_col: Option<String>,
    /// Column with the intake channel.
    #[arg(long)]
    pub channel_col: Option<String>,
    /// Continue an interrupted job (from OUTPUT.progress.json) without
    /// re-scoring or duplicating rows.
    #[arg(long)]
    pub resume: bool,
    /// Rows per chunk; each chunk is written and checkpointed whole.
    #[arg(long, default_value_t = 512)]
    pub chunk_rows: usize,
    /// No progress on stderr and no summary table on stdout.
    #[arg(long, short)]
    pub quiet: bool,
    /// Where to write the summary as JSON (default: OUTPUT with `.summary.json`).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Also write the summary as a self-contained HTML page with charts.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KESU_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Require `Authorization: Bearer <key>` on everything but /healthz and /readyz.
    #[arg(long, env = "KESU_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Most complaints in one /v1/analyze/batch call.
    #[arg(long, env = "KESU_MAX_BATCH_ITEMS", default_value_t = 256)]
    pub max_batch_items: usize,
    /// Largest request body in bytes.
    #[arg(long, env = "KESU_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Complaints queued or running at once; beyond it requests get 429.
    #[arg(long, env = "KESU_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Padded tokens per forward pass for batch calls. Small, so that a
    /// single-complaint call waits for at most one short bulk pass.
    #[arg(long, env = "KESU_BULK_BATCH_TOKENS", default_value_t = 128)]
    pub bulk_batch_tokens: usize,
    /// Model worker threads. On 2 cores one is best: forward passes already
    /// use both cores, and concurrent passes slow each other down.
    #[arg(long, env = "KESU_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Flagged events the risk feed keeps for Last-Event-ID resume.
    #[arg(long, env = "KESU_FEED_CAPACITY", default_value_t = 1024)]
    pub feed_capacity: usize,
    /// Seconds between SSE keep-alive comments.
    #[arg(long, env = "KESU_KEEP_ALIVE_SECS", default_value_t = 15)]
    pub keep_alive_secs: u64,
    #[command(flatten)]
    pub analyzer: AnalyzerArgs,
}

#[derive(Debug, clap::Args)]
pub struct AnalyzerArgs {
    /// Folder holding the trained kesu-heads.{safetensors,json} (default: models/).
    #[arg(long, env = "KESU_HEADS")]
    pub heads: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

impl AnalyzerArgs {
    fn load(&self) -> anyhow::Result<Analyzer> {
        let source = self.model.source()?;
        let heads = self.heads.clone().unwrap_or_else(default_heads_dir);
        Analyzer::load(&source, &heads, self.model.settings()?)
            .with_context(|| format!("loading analyzer ({source}, heads in {})", heads.display()))
    }
}

#[derive(Serialize)]
struct EmbedOutput<'a> {
    embedding: &'a [f32],
    tokens: usize,
    truncated: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Embed { text, model } => embed(text, &model),
        Command::Segment { text, user_dict } => segment(text, user_dict),
        Command::ExportModel { out, model } => export_model(&out, &model),
        Command::Analyze { text, id, analyzer } => analyze(&text, id, &analyzer),
        Command::Score(args) => score(&args),
        Command::Train {
            data,
            out,
            epochs,
            tuned_layers,
            attention_pool,
            seed,
            members,
            report,
            cache,
            model,
        } => {
            let settings = TrainSettings {
                epochs,
                tuned_layers,
                attention_pool,
                seed,
                members,
                cache_dir: cache,
                ..TrainSettings::default()
            };
            train(&data, &out, &settings, report.as_deref(), &model)
        }
        Command::Eval {
            data,
            json,
            analyzer,
        } => eval(&data, json.as_deref(), &analyzer),
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

fn analyze(text: &str, id: Option<String>, args: &AnalyzerArgs) -> anyhow::Result<ExitCode> {
    if text.trim().is_empty() {
        bail!("--text is empty");
    }
    let analyzer = args.load()?;
    let record = analyzer.analyze(&[(id, text)])?.remove(0);
    println!("{}", serde_json::to_string(&record)?);
    Ok(ExitCode::SUCCESS)
}

fn score(args: &ScoreArgs) -> anyhow::Result<ExitCode> {
    use kesu::batch::input::{Columns, InputFormat, read_rows};
    use kesu::batch::score::{OutputFormat, Progress, ScoreSettings, count_lines, score_rows};
    let columns = Columns {
        text: args.text_col.clone(),
        id: args.id_col.clone(),
        time: args.time_col.clone(),
        channel: args.channel_col.clone(),
    };
    // Header and columns are checked before the model loads.
    let rows = read_rows(&args.input, args.format, args.encoding, &columns)?;
    let format = args.format.or_else(|| InputFormat::from_path(&args.input));
    let expected_rows = match format {
        Some(InputFormat::Xlsx) | None => None,
        Some(_) => count_lines(&args.input).ok(),
    };
    let analyzer = args.analyzer.load()?;
    let settings = ScoreSettings {
        output: args.output.clone(),
        output_format: args
            .output_format
            .unwrap_or_else(|| OutputFormat::from_path(&args.output)),
        errors: args
            .errors
            .clone()
            .unwrap_or_else(|| args.output.with_extension("errors.jsonl")),
        chunk_rows: args.chunk_rows,
        resume: args.resume,
        progress: if args.quiet {
            Progress::Quiet
        } else {
            Progress::Auto
        },
        expected_rows,
        input: args.input.clone(),
    };
    let outcome = score_rows(&analyzer, rows, &settings)?;
    let summary = &outcome.summary;
    let summary_path = args
        .summary
        .clone()
        .unwrap_or_else(|| args.output.with_extension("summary.json"));
    std::fs::write(
        &summary_path,
        serde_json::to_string_pretty(&summary)? + "\n",
    )
    .with_context(|| format!("writing {}", summary_path.display()))?;
    if let Some(path) = &args.report {
        let title = format!("kesu — {}", args.input.display());
        std::fs::write(path, kesu::batch::report::html_report(summary, &title))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.quiet {
        print!("{summary}");
        eprintln!(
            "scored {} complaints into {} in {:.1} s ({:.1}/s){}{}",
            outcome.scored_now,
            settings.output.display(),
            outcome.seconds,
            outcome.scored_now as f64 / outcome.seconds.max(1e-9),
            if outcome.resumed > 0 {
                format!("; {} rows were done before (--resume)", outcome.resumed)
            } else {
                String::new()
            },
            if outcome.failed > 0 {
                format!(
                    "; {} bad rows in {}",
                    outcome.failed,
                    settings.errors.display()
                )
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use kesu::http::{AppState, HttpSettings, Metrics};
    use kesu::infer::{BatchLimits, Infer, InferSettings};
    use std::sync::Arc;

    for (name, value) in [
        ("--max-batch-items", args.max_batch_items),
        ("--queue-capacity", args.queue_capacity),
        ("--bulk-batch-tokens", args.bulk_batch_tokens),
        ("--workers", args.workers),
        ("--feed-capacity", args.feed_capacity),
    ] {
        if value == 0 {
            bail!("{name} must be at least 1");
        }
    }
    if args.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        bail!("--api-key is empty");
    }
    let settings = HttpSettings {
        max_batch_items: args.max_batch_items,
        max_body_bytes: args.max_body_bytes,
        api_key: args.api_key.clone(),
        keep_alive: std::time::Duration::from_secs(args.keep_alive_secs.max(1)),
    };
    let infer_settings = InferSettings {
        workers: args.workers,
        interactive: BatchLimits {
            max_items: args.analyzer.model.batch_size,
            max_tokens: args.analyzer.model.batch_tokens,
        },
        bulk: BatchLimits {
            max_items: args.analyzer.model.batch_size,
            max_tokens: args.bulk_batch_tokens,
        },
        capacity: args.queue_capacity,
    };
    let metrics = Arc::new(Metrics::new());
    let feed = Arc::new(kesu::feed::RiskFeed::new(args.feed_capacity));
    let (state, trigger) = AppState::new(settings, feed, Arc::clone(&metrics));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kesu-http")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        let addr = listener.local_addr()?;
        // Load the model off the runtime; /readyz turns 200 when it is in.
        let loader = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<Infer> {
                let analyzer = args.analyzer.load()?;
                let observer: kesu::infer::BatchObserver =
                    Arc::new(move |lane, size, took| metrics.observe_batch(lane, size, took));
                let infer = Infer::start(Arc::new(analyzer), infer_settings, observer)
                    .context("starting model workers")?;
                state.set_infer(infer.clone());
                Ok(infer)
            })
        };
        eprintln!("kesu listening on http://{addr} (model loading; GET /readyz)");
        let server = tokio::spawn(kesu::http::serve(
            listener,
            state,
            trigger,
            kesu::http::shutdown_signal(),
        ));
        let infer = match loader.await.context("model loader panicked")? {
            Ok(infer) => {
                tracing::info!(%addr, "model loaded; ready");
                eprintln!("kesu ready on http://{addr}");
                Some(infer)
            }
            Err(e) => {
                server.abort();
                return Err(e);
            }
        };
        server.await.context("server task panicked")??;
        if let Some(infer) = infer {
            tokio::task::spawn_blocking(move || infer.shutdown()).await?;
        }
        eprintln!("kesu stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn train(
    data: &[PathBuf],
    out: &std::path::Path,
    settings: &TrainSettings,
    report: Option<&std::path::Path>,
    model: &ModelArgs,
) -> anyhow::Result<ExitCode> {
    let mut examples = Vec::new();
    for path in data {
        examples.extend(kesu::dataset::read_labelled(path)?);
    }
    eprintln!(
        "training on {} examples from {} files",
        examples.len(),
        data.len()
    );
    let result = kesu::train::train(&examples, &model.source()?, out, settings)?;
    eprintln!(
        "done: cache {:.0}s, training {:.0}s; temperatures {:?}",
        result.cache_seconds, result.train_seconds, result.temperatures
    );
    if let Some(path) = report {
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn eval(
    data: &std::path::Path,
    json: Option<&std::path::Path>,
    args: &AnalyzerArgs,
) -> anyhow::Result<ExitCode> {
    let gold = kesu::dataset::read_labelled(data)?;
    let analyzer = args.load()?;
    let items: Vec<(Option<String>, &str)> = gold
        .iter()
        .map(|g| (Some(g.id.clone()), g.text.as_str()))
        .collect();
    let (pred, probs): (Vec<_>, Vec<_>) = analyzer
        .analyze_texts_with_probabilities(&items)?
        .into_iter()
        .unzip();
    let mut report = kesu::eval::evaluate(&gold, &pred);
    let flag_probs: Vec<Vec<f32>> = probs.into_iter().map(|p| p.flags).collect();
    report.flags_ece = Some(kesu::eval::flag_ece(&gold, &flag_probs));
    println!(
        "model: {} {}",
        analyzer.model_info().name,
        analyzer.model_info().version
    );
    print!("{report}");
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
