//! Reading analysts' files: CSV/TSV (header detection, columns by name or
//! 1-based number, BOM, UTF-8 / GBK / GB18030 / UTF-16), JSON Lines and
//! Excel `.xlsx`. Every row comes out as an [`InputRow`] or a [`RowError`]
//! naming its line, so one bad row never stops a job.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use encoding_rs::{Encoding, GB18030, GBK, UTF_8};

/// File formats `kesu score` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Jsonl,
    Csv,
    Tsv,
    Xlsx,
}

impl InputFormat {
    /// From the file extension (`.jsonl`/`.ndjson`, `.csv`, `.tsv`/`.tab`/`.txt`, `.xlsx`/`.xlsm`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Self::Jsonl,
            "csv" => Self::Csv,
            "tsv" | "tab" | "txt" => Self::Tsv,
            "xlsx" | "xlsm" => Self::Xlsx,
            _ => return None,
        })
    }
}

/// Text encodings of CSV/TSV/JSONL input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextEncoding {
    /// BOM if present, else UTF-8 if the start of the file is valid UTF-8, else GB18030.
    Auto,
    Utf8,
    Gbk,
    Gb18030,
}

/// Which columns (CSV/TSV/XLSX headers, JSON fields) hold what. A column is
/// a header name, or a 1-based number.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub text: Option<String>,
    pub id: Option<String>,
    pub time: Option<String>,
    pub channel: Option<String>,
}

/// Header names tried when a column is not given.
const TEXT_NAMES: &[&str] = &[
    "text",
    "content",
    "complaint",
    "内容",
    "投诉内容",
    "文本",
    "诉求内容",
];
const ID_NAMES: &[&str] = &["id", "ticket_id", "编号", "工单号", "单号"];
const TIME_NAMES: &[&str] = &[
    "received_at",
    "time",
    "created_at",
    "date",
    "时间",
    "日期",
    "投诉时间",
];
const CHANNEL_NAMES: &[&str] = &["channel", "source", "渠道", "来源"];

/// One complaint read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRow {
    /// 1-based line (CSV/TSV/JSONL) or sheet row (XLSX) where the row starts.
    pub line: usize,
    pub id: Option<String>,
    pub text: String,
    pub received_at: Option<String>,
    pub channel: Option<String>,
}

/// A row that cannot be scored, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowError {
    pub line: usize,
    pub reason: String,
}

/// Errors that stop reading altogether (the file, its header, its columns).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot tell the format from the extension; give --format")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {message}")]
    Columns { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Sheet { path: PathBuf, message: String },
}

pub type RowResult = Result<InputRow, RowError>;

/// Open `path` and stream its rows.
pub fn read_rows(
    path: &Path,
    format: Option<InputFormat>,
    encoding: TextEncoding,
    columns: &Columns,
) -> Result<Box<dyn Iterator<Item = RowResult> + Send>, InputError> {
    let format = format
        .or_else(|| InputFormat::from_path(path))
        .ok_or_else(|| InputError::UnknownFormat {
            path: path.to_path_buf(),
        })?;
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    match format {
        InputFormat::Xlsx => xlsx_rows(path, columns),
        InputFormat::Jsonl | InputFormat::Csv | InputFormat::Tsv => {
            let mut reader = BufReader::with_capacity(1 << 16, File::open(path).map_err(io)?);
            let (encoding, bom) = sniff(&mut reader, encoding).map_err(io)?;
            let mut bom_buf = vec![0; bom];
            reader.read_exact(&mut bom_buf).map_err(io)?;
            // UTF-16 is transcoded to UTF-8 on the fly; everything else is
            // split on ASCII bytes (safe for GBK/GB18030) and decoded per field.
            let reader: Box<dyn BufRead + Send> =
                if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
                    Box::new(BufReader::new(
                        encoding_rs_io::DecodeReaderBytesBuilder::new()
                            .encoding(Some(encoding))
                            .build(reader),
                    ))
                } else {
                    Box::new(reader)
                };
            let field_encoding =
                if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
                    UTF_8
                } else {
                    encoding
                };
            if format == InputFormat::Jsonl {
                Ok(Box::new(jsonl_rows(
                    reader,
                    field_encoding,
                    columns.clone(),
                )))
            } else {
                let delimiter = if format == InputFormat::Csv {
                    b','
                } else {
                    b'\t'
                };
                delimited_rows(path, reader, delimiter, field_encoding, columns)
            }
        }
    }
}

/// Pick the encoding and the BOM length to skip.
fn sniff(
    reader: &mut BufReader<File>,
    choice: TextEncoding,
) -> std::io::Result<(&'static Encoding, usize)> {
    let head = reader.fill_buf()?;
    if let Some((enc, len)) = Encoding::for_bom(head) {
        return Ok((enc, len));
    }
    Ok((
        match choice {
            TextEncoding::Utf8 => UTF_8,
            TextEncoding::Gbk => GBK,
            TextEncoding::Gb18030 => GB18030,
            TextEncoding::Auto => {
                // Valid UTF-8 up to a possibly cut last character.
                match std::str::from_utf8(head) {
                    Ok(_) => UTF_8,
                    Err(e) if e.error_len().is_none() => UTF_8,
                    Err(_) => GB18030,
                }
            }
        },
        0,
    ))
}

fn decode(bytes: &[u8], encoding: &'static Encoding) -> Option<String> {
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| s.into_owned())
}

/// Resolve a column spec against a header: name (case-insensitive) or 1-based number.
fn find_column(header: Option<&[String]>, spec: &str) -> Option<usize> {
    if let Ok(n) = spec.trim().parse::<usize>() {
        return n.checked_sub(1);
    }
    header?
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(spec.trim()))
}

fn default_column(header: &[String], names: &[&str]) -> Option<usize> {
    names.iter().find_map(|n| find_column(Some(header), n))
}

/// Column indices for a table, plus whether its first row is a header.
#[derive(Debug, Clone, Copy)]
struct Layout {
    has_header: bool,
    text: usize,
    id: Option<usize>,
    time: Option<usize>,
    channel: Option<usize>,
}

/// A first row is a header when it names the text column (given or default).
fn layout(first: &[String], columns: &Columns) -> Result<Layout, String> {
    let named = match &columns.text {
        Some(spec) if spec.trim().parse::<usize>().is_err() => find_column(Some(first), spec),
        Some(_) => None,
        None => default_column(first, TEXT_NAMES),
    };
    let has_header = named.is_some()
        || [&columns.id, &columns.time, &columns.channel]
            .iter()
            .filter_map(|c| c.as_deref())
            .any(|spec| spec.parse::<usize>().is_err() && find_column(Some(first), spec).is_some());
    let header = has_header.then_some(first);
    let text = match &columns.text {
        Some(spec) => find_column(header, spec).ok_or_else(|| {
            format!("no column {spec:?} in the header {first:?} (give --text-col NAME or a 1-based number)")
        })?,
        None => match header {
            Some(h) => default_column(h, TEXT_NAMES).ok_or("no text column")?,
            None if first.len() == 1 => 0,
            None => {
                return Err(format!(
                    "no header naming the text column (tried {}); give --text-col NAME or a 1-based number",
                    TEXT_NAMES.join(", ")
                ));
            }
        },
    };
    let optional =
        |given: &Option<String>, names: &[&str], flag: &str| -> Result<Option<usize>, String> {
            match given {
                Some(spec) => find_column(header, spec).map(Some).ok_or_else(|| {
                    format!("no column {spec:?} for {flag} in the header {first:?}")
                }),
                None => Ok(header.and_then(|h| default_column(h, names))),
            }
        };
    Ok(Layout {
        has_header,
        text,
        id: optional(&columns.id, ID_NAMES, "--id-col")?,
        time: optional(&columns.time, TIME_NAMES, "--time-col")?,
        channel: optional(&columns.channel, CHANNEL_NAMES, "--channel-col")?,
    })
}

/// Build a row from decoded cells.
fn table_row(line: usize, cells: &[String], layout: &Layout) -> RowResult {
    let cell = |i: Option<usize>| {
        i.and_then(|i| cells.get(i))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let text = cells.get(layout.text).map(String::as_str).unwrap_or("");
    if text.trim().is_empty() {
        return Err(RowError {
            line,
            reason: "empty text".into(),
        });
    }
    Ok(InputRow {
        line,
        id: cell(layout.id),
        text: text.to_string(),
        received_at: cell(layout.time),
        channel: cell(layout.channel),
    })
}

fn delimited_rows(
    path: &Path,
    reader: Box<dyn BufRead + Send>,
    delimiter: u8,
    encoding: &'static Encoding,
    columns: &Columns,
) -> Result<Box<dyn Iterator<Item = RowResult> + Send>, InputError> {
    let csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut records = csv.into_byte_records();
    let decode_record = move |record: &csv::ByteRecord| -> Result<Vec<String>, usize> {
        record
            .iter()
            .enumerate()
            .map(|(i, f)| decode(f, encoding).ok_or(i + 1))
            .collect()
    };
    // The first record decides the layout.
    let Some(first) = records.next() else {
        return Ok(Box::new(std::iter::empty()));
    };
    let columns_error = |message: String| InputError::Columns {
        path: path.to_path_buf(),
        message,
    };
    let first = first.map_err(|e| columns_error(format!("line 1: {e}")))?;
    let first_cells = decode_record(&first).map_err(|col| {
        columns_error(format!(
            "line 1: column {col} is not valid {}",
            encoding.name()
        ))
    })?;
    let layout = layout(&first_cells, columns).map_err(columns_error)?;
    let width = first_cells.len();
    let enc_name = encoding.name();
    let head = (!layout.has_header).then(|| table_row(1, &first_cells, &layout));
    let rest = records.map(move |record| {
        let record = record.map_err(|e| RowError {
            line: e.position().map_or(0, |p| p.line() as usize),
            reason: format!("unreadable row: {e}"),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != width {
            return Err(RowError {
                line,
                reason: format!(
                    "expected {width} columns, found {} (broken quoting or a stray delimiter?)",
                    record.len()
                ),
            });
        }
        let cells = decode_record(&record).map_err(|col| RowError {
            line,
            reason: format!("column {col} has bytes that are not valid {enc_name}"),
        })?;
        table_row(line, &cells, &layout)
    });
    Ok(Box::new(head.into_iter().chain(rest)))
}

fn jsonl_rows(
    reader: Box<dyn BufRead + Send>,
    encoding: &'static Encoding,
    columns: Columns,
) -> impl Iterator<Item = RowResult> {
    let field = |given: &Option<String>, default: &str| {
        given.clone().unwrap_or_else(|| default.to_string())
    };
    let (text_key, id_key, time_key, channel_key) = (
        field(&columns.text, "text"),
        field(&columns.id, "id"),
        field(&columns.time, "received_at"),
        field(&columns.channel, "channel"),
    );
    reader
        .split(b'\n')
        .enumerate()
        .filter_map(move |(i, bytes)| {
            let line = i + 1;
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => {
                    return Some(Err(RowError {
                        line,
                        reason: format!("read error: {e}"),
                    }));
                }
            };
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            let Some(text) = decode(bytes, encoding) else {
                return Some(Err(RowError {
                    line,
                    reason: format!("bytes that are not valid {}", encoding.name()),
                }));
            };
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    return Some(Err(RowError {
                        line,
                        reason: format!("not JSON: {e}"),
                    }));
                }
            };
            let as_text = |key: &str| -> Option<String> {
                match value.get(key)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }
            };
            Some(match value.get(&text_key) {
                Some(serde_json::Value::String(t)) if !t.trim().is_empty() => Ok(InputRow {
                    line,
                    id: as_text(&id_key),
                    text: t.clone(),
                    received_at: as_text(&time_key),
                    channel: as_text(&channel_key),
                }),
                Some(serde_json::Value::String(_)) => Err(RowError {
                    line,
                    reason: "empty text".into(),
                }),
                Some(_) => Err(RowError {
                    line,
                    reason: format!("\"{text_key}\" is not a string"),
                }),
                None => Err(RowError {
                    line,
                    reason: format!("no \"{text_key}\" field"),
                }),
            })
        })
}

fn xlsx_rows(
    path: &Path,
    columns: &Columns,
) -> Result<Box<dyn Iterator<Item = RowResult> + Send>, InputError> {
    use calamine::{Data, Reader, open_workbook_auto};
    let sheet_error = |message: String| InputError::Sheet {
        path: path.to_path_buf(),
        message,
    };
    let mut workbook = open_workbook_auto(path).map_err(|e| sheet_error(e.to_string()))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| sheet_error("the workbook has no sheet".into()))?
        .map_err(|e| sheet_error(e.to_string()))?;
    let start_row = range.start().map_or(0, |(r, _)| r as usize);
    let cell_text = |d: &Data| -> String {
        match d {
            Data::Empty => String::new(),
            Data::String(s) => s.clone(),
            Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
            Data::DateTime(dt) => dt.as_datetime().map_or_else(
                || dt.to_string(),
                |t| t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            ),
            other => other.to_string(),
        }
    };
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    let Some(first) = rows.first() else {
        return Ok(Box::new(std::iter::empty()));
    };
    let layout = layout(first, columns).map_err(|m| InputError::Columns {
        path: path.to_path_buf(),
        message: m,
    })?;
    let skip = usize::from(layout.has_header);
    Ok(Box::new(
        rows.into_iter()
            .enumerate()
            .skip(skip)
            .filter_map(move |(i, cells)| {
                // Fully empty rows are layout, not data.
                if cells.iter().all(|c| c.trim().is_empty()) {
                    return None;
                }
                Some(table_row(start_row + i + 1, &cells, &layout))
            }),
    ))
}
