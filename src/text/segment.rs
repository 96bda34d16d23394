//! jieba-rs segmentation with kesu's complaint-domain user dictionary, so
//! regulators, hotlines and trade terms (12315, 金融监管总局, 理赔, 霸王条款 …)
//! come out as single words for the risk rules.

use std::io::BufReader;
use std::path::Path;

use jieba_rs::Jieba;
use serde::Serialize;

/// The domain dictionary shipped in `models/`, compiled in so the binary
/// segments the same way wherever it runs.
pub const DOMAIN_DICT: &str = include_str!("../../models/complaint_dict.txt");

/// Errors from loading a user dictionary.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("cannot read dictionary {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("bad dictionary {path}: {message}")]
    Dict { path: String, message: String },
}

/// One word with its character (not byte) offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// jieba with the default dictionary plus the complaint-domain words.
pub struct Segmenter {
    jieba: Jieba,
}

impl Segmenter {
    /// jieba's default dictionary plus the embedded domain dictionary.
    pub fn new() -> Self {
        let mut jieba = Jieba::new();
        jieba
            .load_dict(&mut BufReader::new(DOMAIN_DICT.as_bytes()))
            .expect("the embedded domain dictionary is checked by a unit test");
        Self { jieba }
    }

    /// Add an extra user dictionary (jieba format: `word [freq] [tag]` per line).
    pub fn load_user_dict(&mut self, path: &Path) -> Result<(), SegmentError> {
        let file = std::fs::File::open(path).map_err(|source| SegmentError::Io {
            path: path.display().to_string(),
            source,
        })?;
        self.jieba
            .load_dict(&mut BufReader::new(file))
            .map_err(|e| SegmentError::Dict {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// Segment text (HMM on for unseen words), with character offsets.
    pub fn segment(&self, text: &str) -> Vec<Segment> {
        self.jieba
            .tokenize(text, jieba_rs::TokenizeMode::Default, true)
            .into_iter()
            .map(|t| Segment {
                word: t.word.to_string(),
                start: t.start,
                end: t.end,
            })
            .collect()
    }
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_dictionary_parses() {
        let mut jieba = Jieba::empty();
        jieba
            .load_dict(&mut BufReader::new(DOMAIN_DICT.as_bytes()))
            .unwrap();
        assert!(jieba.has_word("金融监管总局"));
    }

    #[test]
    fn offsets_are_characters_not_bytes() {
        let seg = Segmenter::new();
        let text = "我要打12315投诉";
        let words = seg.segment(text);
        let hotline = words.iter().find(|w| w.word == "12315").unwrap();
        assert_eq!((hotline.start, hotline.end), (3, 8));
        let chars: Vec<char> = text.chars().collect();
        for w in &words {
            assert_eq!(chars[w.start..w.end].iter().collect::<String>(), w.word);
        }
    }
}
