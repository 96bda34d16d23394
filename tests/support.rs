//! Shared helpers: the real model (loaded once per test binary) and fixtures.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kesu::model::{Encoder, EncoderSettings, ModelSource};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_dir() -> PathBuf {
    repo().join("models/e5-small")
}

/// The real e5-small model. Missing model = failed test, never a skip: CI
/// fetches it with scripts/fetch-model.sh before the tests run.
pub fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let dir = model_dir();
        assert!(
            dir.join("e5-small-q4.bin").is_file(),
            "model missing in {}: run scripts/fetch-model.sh first",
            dir.display()
        );
        Encoder::load(&ModelSource::Dir(dir), EncoderSettings::default())
            .expect("the fetched model loads")
    })
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
