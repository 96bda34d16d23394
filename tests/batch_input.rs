//! Reading analysts' files: formats, encodings, headers, columns and bad rows.

use kesu::batch::input::{Columns, InputFormat, InputRow, RowError, TextEncoding, read_rows};

fn read(
    name: &str,
    bytes: &[u8],
    encoding: TextEncoding,
    columns: &Columns,
) -> (Vec<InputRow>, Vec<RowError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for row in read_rows(&path, None, encoding, columns).unwrap() {
        match row {
            Ok(r) => ok.push(r),
            Err(e) => bad.push(e),
        }
    }
    (ok, bad)
}

#[test]
fn csv_with_bom_chinese_header_and_bad_rows() {
    let text = "\u{feff}编号,投诉时间,渠道,投诉内容\n\
                A1,2026-01-02,app,\"快递三天没到，\n客服也不回\"\n\
                A2,2026-01-03,hotline,\n\
                A3,2026-01-04,app,多了一列,???\n\
                A4,2026-01-05,weibo,\"他说\"\"马上处理\"\"，结果没人管\"\n";
    let (ok, bad) = read(
        "in.csv",
        text.as_bytes(),
        TextEncoding::Auto,
        &Columns::default(),
    );
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].id.as_deref(), Some("A1"));
    assert_eq!(ok[0].text, "快递三天没到，\n客服也不回");
    assert_eq!(ok[0].received_at.as_deref(), Some("2026-01-02"));
    assert_eq!(ok[0].channel.as_deref(), Some("app"));
    assert_eq!(ok[0].line, 2);
    assert_eq!(ok[1].text, "他说\"马上处理\"，结果没人管");
    assert_eq!(ok[1].line, 6, "line numbers count the quoted newline");
    assert_eq!(bad.len(), 2);
    assert_eq!((bad[0].line, bad[0].reason.as_str()), (4, "empty text"));
    assert_eq!(bad[1].line, 5);
    assert!(bad[1].reason.contains("columns"), "{}", bad[1].reason);
}

#[test]
fn gbk_csv_is_detected_and_undecodable_rows_are_set_aside() {
    let (gbk, _, _) = encoding_rs::GBK.encode("id,text\n1,退款一直没到账\n");
    let mut bytes = gbk.into_owned();
    // A row with a byte sequence GB18030 cannot decode.
    bytes.extend_from_slice(b"2,\x81\x20bad\n");
    bytes.extend_from_slice(&encoding_rs::GBK.encode("3,客服态度差\n").0);
    let (ok, bad) = read("gbk.csv", &bytes, TextEncoding::Auto, &Columns::default());
    let texts: Vec<&str> = ok.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts, ["退款一直没到账", "客服态度差"]);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 3);
    assert!(bad[0].reason.contains("not valid"), "{}", bad[0].reason);
    // Chosen explicitly, the same file reads the same way.
    let (ok, _) = read("gbk.csv", &bytes, TextEncoding::Gbk, &Columns::default());
    assert_eq!(ok.len(), 2);
}

#[test]
fn headerless_tsv_by_column_number_and_utf16() {
    let columns = Columns {
        text: Some("2".into()),
        id: Some("1".into()),
        ..Columns::default()
    };
    let (ok, bad) = read(
        "in.tsv",
        "x1\t电费多扣了\nx2\t网点排队两小时\n".as_bytes(),
        TextEncoding::Auto,
        &columns,
    );
    assert!(bad.is_empty());
    assert_eq!(ok.len(), 2, "no header: the first line is data");
    assert_eq!(
        (ok[0].id.as_deref(), ok[0].text.as_str()),
        (Some("x1"), "电费多扣了")
    );
    // Excel's "Unicode text": UTF-16LE with a BOM, tab-separated, header row.
    let mut utf16 = vec![0xff, 0xfe];
    for unit in "id\ttext\n7\t保险理赔拖了半年\n".encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let (ok, _) = read("excel.txt", &utf16, TextEncoding::Auto, &Columns::default());
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].text, "保险理赔拖了半年");
    assert_eq!(ok[0].id.as_deref(), Some("7"));
}

#[test]
fn missing_columns_fail_before_any_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(&path, "a,b\n1,2\n").unwrap();
    let err = read_rows(&path, None, TextEncoding::Auto, &Columns::default())
        .err()
        .expect("no text column is an error")
        .to_string();
    assert!(err.contains("--text-col"), "{err}");
    let named = Columns {
        text: Some("正文".into()),
        ..Columns::default()
    };
    let err = read_rows(&path, None, TextEncoding::Auto, &named)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("正文"), "{err}");
    assert!(
        read_rows(
            &dir.path().join("x.doc"),
            None,
            TextEncoding::Auto,
            &Columns::default()
        )
        .is_err()
    );
    assert_eq!(
        InputFormat::from_path(std::path::Path::new("a.XLSX")),
        Some(InputFormat::Xlsx)
    );
}

#[test]
fn jsonl_rows_name_their_lines() {
    let text = "{\"id\": 5, \"text\": \"APP闪退\", \"channel\": \"app\"}\n\n{\"text\": 3}\nnot json\n{\"id\": \"b\", \"text\": \"  \"}\n";
    let (ok, bad) = read(
        "in.jsonl",
        text.as_bytes(),
        TextEncoding::Auto,
        &Columns::default(),
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].id.as_deref(), Some("5"));
    assert_eq!(ok[0].channel.as_deref(), Some("app"));
    let lines: Vec<usize> = bad.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 4, 5]);
}

#[test]
fn xlsx_first_sheet_with_header_dates_and_an_empty_row() {
    // Written by openpyxl: 工单号 | 投诉时间 | 投诉内容, three rows, the second with no text.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/complaints.xlsx");
    let rows: Vec<_> = read_rows(&path, None, TextEncoding::Auto, &Columns::default())
        .unwrap()
        .collect();
    assert_eq!(rows.len(), 3);
    let first = rows[0].as_ref().unwrap();
    assert_eq!(first.id.as_deref(), Some("1001"));
    assert_eq!(first.received_at.as_deref(), Some("2026-01-02T09:30:00"));
    assert!(first.text.contains("12315"));
    assert_eq!(rows[1].as_ref().unwrap_err().line, 3);
    assert_eq!(rows[2].as_ref().unwrap().text, "退款一直不到账");
}
