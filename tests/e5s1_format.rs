//! The E5S1 reader on small synthetic files: a valid file builds a BertModel,
//! and every kind of damage is a clear error, never a panic.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use kesu::model::ModelError;
use kesu::model::e5s1::{E5s1, Q4_BLOCK_BYTES, QK};

const H: usize = 64;
const LAYERS: usize = 2;
const FF: usize = 128;
const VOCAB: usize = 40;
const MAXP: usize = 16;

/// Build a tiny but complete E5S1 image with deterministic weights.
fn synthetic() -> Vec<u8> {
    let mut tensors: Vec<(String, bool, usize)> = vec![
        ("emb.word".into(), true, VOCAB * H),
        ("emb.pos".into(), false, MAXP * H),
        ("emb.type".into(), false, 2 * H),
        ("emb.ln.w".into(), false, H),
        ("emb.ln.b".into(), false, H),
    ];
    for l in 0..LAYERS {
        for (part, q, n) in [
            ("q.w", true, H * H),
            ("q.b", false, H),
            ("k.w", true, H * H),
            ("k.b", false, H),
            ("v.w", true, H * H),
            ("v.b", false, H),
            ("ao.w", true, H * H),
            ("ao.b", false, H),
            ("aln.w", false, H),
            ("aln.b", false, H),
            ("fi.w", true, FF * H),
            ("fi.b", false, FF),
            ("fo.w", true, H * FF),
            ("fo.b", false, H),
            ("oln.w", false, H),
            ("oln.b", false, H),
        ] {
            tensors.push((format!("l{l}.{part}"), q, n));
        }
    }
    let mut head = Vec::new();
    head.extend_from_slice(b"E5S1");
    for v in [
        1u32,
        H as u32,
        LAYERS as u32,
        4,
        FF as u32,
        VOCAB as u32,
        MAXP as u32,
        2,
    ] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    head.extend_from_slice(&1e-12f32.to_le_bytes());
    head.extend_from_slice(&(QK as u32).to_le_bytes());
    // vocabulary: pieces "p0".."p{n}"
    let pieces: Vec<String> = (0..VOCAB).map(|i| format!("p{i}")).collect();
    let blob: Vec<u8> = pieces.iter().flat_map(|p| p.bytes()).collect();
    for v in [VOCAB as u32, 0, 2, 1, 3] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    head.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    let mut off = 0u32;
    head.extend_from_slice(&off.to_le_bytes());
    for p in &pieces {
        off += p.len() as u32;
        head.extend_from_slice(&off.to_le_bytes());
    }
    for i in 0..VOCAB {
        head.extend_from_slice(&(-(i as f32)).to_le_bytes());
    }
    head.extend_from_slice(&blob);
    head.extend_from_slice(&0u32.to_le_bytes()); // normalisation entries
    head.extend_from_slice(&0u32.to_le_bytes()); // normalisation bytes
    head.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    let dir_len: usize = tensors
        .iter()
        .map(|(n, _, _)| 2 + n.len() + 1 + 4 + 8 + 8)
        .sum();
    let mut data_off = head.len() + dir_len;
    let mut data = Vec::new();
    let mut dir = Vec::new();
    for (i, (name, q4, n)) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = if *q4 {
            (0..n / QK)
                .flat_map(|b| {
                    let mut block = half::f16::from_f32(0.02).to_le_bytes().to_vec();
                    block.extend((0..QK / 2).map(|j| ((i + b + j) % 256) as u8));
                    block
                })
                .collect()
        } else if name.ends_with("ln.w") {
            (0..*n).flat_map(|_| 1f32.to_le_bytes()).collect()
        } else {
            (0..*n)
                .flat_map(|j| (((i * 7 + j) % 13) as f32 * 0.01 - 0.06).to_le_bytes())
                .collect()
        };
        dir.extend_from_slice(&(name.len() as u16).to_le_bytes());
        dir.extend_from_slice(name.as_bytes());
        dir.push(u8::from(*q4));
        dir.extend_from_slice(&(*n as u32).to_le_bytes());
        dir.extend_from_slice(&(data_off as u64).to_le_bytes());
        dir.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        data_off += bytes.len();
        data.extend(bytes);
    }
    let mut out = head;
    out.extend(dir);
    out.extend(data);
    out
}

#[test]
fn synthetic_file_builds_a_working_bert_model() {
    let image = synthetic();
    let file = E5s1::parse(&image).expect("valid synthetic file");
    assert_eq!(file.header.hidden, H);
    assert_eq!(file.header.vocab, VOCAB);
    assert_eq!(file.header.pad_id, 1);
    let device = Device::Cpu;
    let tensors = file.bert_tensors(&device).unwrap();
    let q = tensors["encoder.layer.1.attention.self.query.weight"].clone();
    assert_eq!(q.dims(), &[H, H]);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
    let model = BertModel::load(vb, &file.header.bert_config()).unwrap();
    let ids = Tensor::new(&[[0u32, 5, 6, 2]], &device).unwrap();
    let out = model
        .forward(&ids, &ids.zeros_like().unwrap(), None)
        .unwrap();
    assert_eq!(out.dims(), &[1, 4, H]);
    let values = out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
}

#[test]
fn q4_weights_dequantise_to_scale_times_offset_nibbles() {
    let image = synthetic();
    let file = E5s1::parse(&image).unwrap();
    let word = file.dequantize("emb.word").unwrap();
    assert_eq!(word.len(), VOCAB * H);
    // tensor #0, block 0, byte 0 holds 0x00: both nibbles are q = 0 -> -8 * 0.02
    let scale = half::f16::from_f32(0.02).to_f32();
    assert_eq!(word[0], -8.0 * scale);
    assert_eq!(word[16], -8.0 * scale);
    // byte 1 holds 0x01: low nibble 1 -> -7 * scale, high nibble 0.
    assert_eq!(word[1], -7.0 * scale);
    assert_eq!(word[17], -8.0 * scale);
    assert_eq!(Q4_BLOCK_BYTES, 18);
}

#[test]
fn every_truncation_is_a_clear_error() {
    let image = synthetic();
    // Cut inside the header, the vocabulary, the directory and the tensor data.
    for cut in [0, 3, 10, 50, 200, 400, image.len() / 2, image.len() - 1] {
        let err = E5s1::parse(&image[..cut]).expect_err("truncated file must not parse");
        let msg = err.to_string();
        assert!(
            matches!(err, ModelError::Truncated { .. }) || msg.contains("magic"),
            "cut at {cut}: {msg}"
        );
        assert!(msg.contains("truncated") || msg.contains("magic"), "{msg}");
    }
}

#[test]
fn corrupted_fields_are_named() {
    let image = synthetic();
    let mut bad_magic = image.clone();
    bad_magic[0] = b'X';
    assert!(
        E5s1::parse(&bad_magic)
            .unwrap_err()
            .to_string()
            .contains("magic")
    );

    let mut bad_version = image.clone();
    bad_version[4] = 9;
    assert!(
        E5s1::parse(&bad_version)
            .unwrap_err()
            .to_string()
            .contains("version 9")
    );

    let mut bad_heads = image.clone();
    bad_heads[16..20].copy_from_slice(&5u32.to_le_bytes()); // 64 % 5 != 0
    assert!(
        E5s1::parse(&bad_heads)
            .unwrap_err()
            .to_string()
            .contains("heads 5")
    );

    let mut bad_block = image.clone();
    bad_block[40..44].copy_from_slice(&16u32.to_le_bytes());
    assert!(
        E5s1::parse(&bad_block)
            .unwrap_err()
            .to_string()
            .contains("block size 16")
    );
}

#[test]
fn tensor_table_damage_is_detected() {
    let image = synthetic();
    let file = E5s1::parse(&image).unwrap();
    // Find the directory entry of the first tensor by its name bytes.
    let name = b"emb.word";
    let at = image
        .windows(name.len())
        .position(|w| w == name)
        .expect("directory holds emb.word");
    let meta = at + name.len(); // dtype u8, elements u32, offset u64, bytes u64

    let mut wrong_count = image.clone();
    wrong_count[meta + 1..meta + 5].copy_from_slice(&((VOCAB * H - QK) as u32).to_le_bytes());
    let msg = E5s1::parse(&wrong_count).unwrap_err().to_string();
    assert!(msg.contains("emb.word"), "{msg}");

    let mut past_end = image.clone();
    past_end[meta + 5..meta + 13].copy_from_slice(&(image.len() as u64).to_le_bytes());
    let err = E5s1::parse(&past_end).unwrap_err();
    assert!(matches!(err, ModelError::Truncated { .. }), "{err}");

    let mut bad_dtype = image.clone();
    bad_dtype[meta] = 7;
    assert!(
        E5s1::parse(&bad_dtype)
            .unwrap_err()
            .to_string()
            .contains("dtype 7")
    );

    let mut renamed = image.clone();
    renamed[at..at + name.len()].copy_from_slice(b"emb.wxrd");
    assert!(
        E5s1::parse(&renamed)
            .unwrap_err()
            .to_string()
            .contains("missing tensor emb.word")
    );
    assert_eq!(file.tensors.len(), 5 + 16 * LAYERS);
}
