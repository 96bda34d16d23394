//! The `kesu` binary through its command line.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::model_dir;

fn kesu(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kesu"))
        .args(args)
        .env("KESU_MODEL", model_dir())
        .env_remove("KESU_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kesu binary runs");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// The JSON objects of a JSON Lines file.
fn read_json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// The `id` of every record in a scored JSON Lines file.
fn scored_ids(path: &std::path::Path) -> Vec<String> {
    read_json_lines(path)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn embed_text_prints_one_384_float_object() {
    let out = kesu(&["embed", "--text", "物流太慢了，一周还没到"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let emb = lines[0]["embedding"].as_array().unwrap();
    assert_eq!(emb.len(), 384);
    assert_eq!(lines[0]["truncated"], false);
}

#[test]
fn embed_stdin_prints_one_object_per_line_and_names_a_bad_line() {
    let out = kesu(&["embed"], Some("第一条投诉\n第二条投诉\r\n第三条\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out).len(), 3);

    let out = kesu(
        &["embed", "--batch-size", "1"],
        Some("好的一条\n\n后面一条\n"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("empty"), "{err}");
    assert_eq!(
        json_lines(&out).len(),
        1,
        "the line before the bad one is kept"
    );
}

#[test]
fn missing_model_is_a_clear_error() {
    let out = kesu(
        &["embed", "--text", "x", "--model", "/nonexistent/model"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/model") && err.contains("fetch-model.sh"),
        "{err}"
    );
}

#[test]
fn unreachable_hub_fails_with_a_clear_message() {
    let hf_home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kesu"))
        .args([
            "embed",
            "--text",
            "x",
            "--model",
            "hub:intfloat/multilingual-e5-small",
        ])
        // A closed local port: the download fails at once, no traffic leaves the machine.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", hf_home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HF_ENDPOINT") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn segment_prints_domain_words_with_char_offsets() {
    let out = kesu(&["segment", "--text", "我要打12315投诉理赔"], None);
    assert!(out.status.success());
    let words = json_lines(&out).remove(0);
    let words = words.as_array().unwrap();
    let hotline = words
        .iter()
        .find(|w| w["word"] == "12315")
        .expect("12315 whole");
    assert_eq!(
        (hotline["start"].as_u64(), hotline["end"].as_u64()),
        (Some(3), Some(8))
    );
    assert!(words.iter().any(|w| w["word"] == "理赔"));
}

#[test]
fn analyze_prints_an_analysis_record() {
    let out = kesu(
        &[
            "analyze",
            "--id",
            "c-1",
            "--text",
            "再不退款我就去12315投诉！",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json_lines(&out).remove(0);
    assert_eq!(r["id"], "c-1");
    for key in ["category", "intensity", "motive", "risk", "model"] {
        assert!(r.get(key).is_some(), "missing {key}: {r}");
    }
    assert!(r["intensity"]["level"].is_u64());
    assert!(r["risk"]["flagged"].is_boolean());
    assert!(!r["model"]["version"].as_str().unwrap().is_empty());
}

#[test]
fn score_keeps_order_and_ids_and_sets_bad_lines_aside() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    let lines = [
        r#"{"id": "a", "text": "这是一条很长很长的投诉，快递员态度恶劣，包裹还被摔坏了，我要求赔偿和道歉，否则就去消协投诉。"}"#,
        r#"{"id": 7, "text": "短"}"#,
        r#"{"id": "c", "text": "APP打不开"}"#,
    ];
    let score = || {
        let args = [
            "score",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ];
        kesu(&args, None)
    };
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = score();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scored_ids(&output), ["a", "7", "c"]);

    std::fs::write(
        &input,
        format!("{}\n{{\"id\": \"x\"}}\n{}\n", lines[0], lines[2]),
    )
    .unwrap();
    let out = score();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = scored_ids(&output);
    assert_eq!(ids, ["a", "c"], "the job goes on past a bad line");
    let errors = read_json_lines(&dir.path().join("out.errors.jsonl"));
    assert_eq!(errors.len(), 1);
    let bad = &errors[0];
    assert_eq!(bad["line"], 2);
    assert!(bad["reason"].as_str().unwrap().contains("text"), "{bad}");

    // Flattened CSV output, chosen by the extension.
    let csv_out = dir.path().join("out.csv");
    let out = kesu(
        &[
            "score",
            "--input",
            input.to_str().unwrap(),
            "--output",
            csv_out.to_str().unwrap(),
            "--quiet",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv_out).unwrap();
    let mut rows = text.lines();
    assert!(
        rows.next()
            .unwrap()
            .starts_with("id,category,category_score,intensity,")
    );
    let first = rows.next().unwrap();
    assert!(first.starts_with("a,"), "{first}");
    assert!(first.contains("regulator"), "消协 is a regulator: {first}");
    assert_eq!(rows.count(), 1);
}

#[test]
fn eval_prints_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gold.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"id": "g1", "text": "快递五天了还没到，麻烦查一下", "category": "delivery_logistics", "intensity": 1, "motive": "resolution", "risk_flags": []}"#,
            "\n",
            r#"{"id": "g2", "text": "孩子吃了你们的零食食物中毒住院了，我要去市场监管局投诉", "category": "product_quality", "intensity": 2, "motive": "compensation", "risk_flags": ["safety_injury", "regulator", "vulnerable_customer"], "risk_level": "critical"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = kesu(&["eval", "--data", data.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "macro-F1",
        "category confusion",
        "risk-flag macro-F1",
        "flagged (high/critical)",
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
}

#[test]
fn score_survives_kill_9_and_resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.jsonl");
    let progress = dir.path().join("out.jsonl.progress.json");
    let texts = [
        "快递三天没到",
        "客服态度很差，直接挂电话",
        "退款申请一周了还没处理",
        "APP一直闪退，没法下单",
        "电费多扣了两百",
        "",
    ];
    let mut csv = String::from("id,text\n");
    for i in 0..96 {
        csv.push_str(&format!("r{i},{}\n", texts[i % texts.len()]));
    }
    std::fs::write(&input, csv).unwrap();
    let args = |resume: bool| {
        let mut a = vec![
            "score".to_string(),
            "--input".into(),
            input.display().to_string(),
            "--output".into(),
            output.display().to_string(),
            "--chunk-rows".into(),
            "8".into(),
            "--quiet".into(),
        ];
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_kesu"))
        .args(args(false))
        .env("KESU_MODEL", model_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill -9 once at least two chunks are checkpointed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let rows = std::fs::read_to_string(&progress)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["rows"].as_u64())
            .unwrap_or(0);
        if rows >= 16 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress within 300 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = std::fs::read_to_string(&output).unwrap();
    assert!(
        partial.is_empty() || partial.ends_with('\n'),
        "a partial line after kill -9"
    );
    for line in partial.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("only complete records");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_kesu"))
        .args(args(true))
        .env("KESU_MODEL", model_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = scored_ids(&output);
    let want: Vec<String> = (0..96)
        .filter(|i| i % 6 != 5)
        .map(|i| format!("r{i}"))
        .collect();
    assert_eq!(ids, want, "every good row once, in order");
    let errors = read_json_lines(&dir.path().join("out.errors.jsonl"));
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    let want_lines: Vec<u64> = (0..96)
        .filter(|i| i % 6 == 5)
        .map(|i| i as u64 + 2)
        .collect();
    assert_eq!(lines, want_lines, "every empty row reported once");
    // The summary covers the rows of both runs.
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out.summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["scored"], 80);
    assert_eq!(summary["bad_rows"], 16);
    let by_level: u64 = summary["risk_levels"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_level, 80);
    // Resuming a finished job changes nothing.
    let before = std::fs::read(&output).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_kesu"))
        .args(args(true))
        .env("KESU_MODEL", model_dir())
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read(&output).unwrap(), before);
}
