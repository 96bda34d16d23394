//! Where the model comes from: the fetched E5S1 folder (default), any local
//! folder in Hugging Face layout, or a hub repository (`hub:ORG/NAME`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};

use super::ModelError;
use super::e5s1::E5s1;

/// File name of the packed 4-bit model inside a model folder.
pub const E5S1_FILE: &str = "e5-small-q4.bin";
/// Where `scripts/fetch-model.sh` puts the model, relative to the repository.
pub const DEFAULT_MODEL_DIR: &str = "models/e5-small";

/// A model location as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local folder: either `e5-small-q4.bin` + `tokenizer.json`, or
    /// `config.json` + `model.safetensors` + `tokenizer.json`.
    Dir(PathBuf),
    /// A Hugging Face hub repository in the safetensors layout, fetched with
    /// hf-hub (honours `HF_ENDPOINT` and `HF_HOME`).
    Hub(String),
}

impl Default for ModelSource {
    /// `models/e5-small` in the working directory, else beside this crate's sources.
    fn default() -> Self {
        let local = PathBuf::from(DEFAULT_MODEL_DIR);
        if local.is_dir() {
            return Self::Dir(local);
        }
        Self::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL_DIR))
    }
}

impl FromStr for ModelSource {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("hub:") {
            Some(repo) if repo.split('/').count() == 2 && !repo.contains("//") => {
                Ok(Self::Hub(repo.to_string()))
            }
            Some(repo) => Err(ModelError::NotFound(format!(
                "hub model {repo:?} must look like hub:ORG/NAME"
            ))),
            None if s.is_empty() => Err(ModelError::NotFound("empty model path".into())),
            None => Ok(Self::Dir(PathBuf::from(s))),
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::Hub(repo) => write!(f, "hub:{repo}"),
        }
    }
}

/// Weight files of a resolved model.
#[derive(Debug, Clone)]
pub enum Weights {
    E5s1(PathBuf),
    Safetensors { config: PathBuf, weights: PathBuf },
}

/// The files a model source resolved to.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub weights: Weights,
    pub tokenizer: PathBuf,
}

impl ModelSource {
    /// Find (or download) the files, failing with a message that says what is missing.
    pub fn resolve(&self) -> Result<ModelFiles, ModelError> {
        match self {
            Self::Dir(dir) => resolve_dir(dir),
            Self::Hub(repo) => resolve_hub(repo),
        }
    }
}

fn resolve_dir(dir: &Path) -> Result<ModelFiles, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::NotFound(format!(
            "{} is not a folder; run scripts/fetch-model.sh to fetch the default model",
            dir.display()
        )));
    }
    let tokenizer = dir.join("tokenizer.json");
    let packed = dir.join(E5S1_FILE);
    let config = dir.join("config.json");
    let safetensors = dir.join("model.safetensors");
    let weights = if packed.is_file() {
        Weights::E5s1(packed)
    } else if config.is_file() && safetensors.is_file() {
        Weights::Safetensors {
            config,
            weights: safetensors,
        }
    } else {
        return Err(ModelError::NotFound(format!(
            "{} holds neither {E5S1_FILE} nor config.json + model.safetensors \
             (run scripts/fetch-model.sh for the default model)",
            dir.display()
        )));
    };
    if !tokenizer.is_file() {
        return Err(ModelError::NotFound(format!(
            "{} has no tokenizer.json",
            dir.display()
        )));
    }
    Ok(ModelFiles { weights, tokenizer })
}

fn resolve_hub(repo: &str) -> Result<ModelFiles, ModelError> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .map_err(|e| ModelError::Hub(format!("cannot set up the hub client: {e}")))?;
    let repo_api = api.model(repo.to_string());
    let get = |file: &str| {
        repo_api.get(file).map_err(|e| {
            ModelError::Hub(format!(
                "cannot fetch {file} of {repo} (is a hub or mirror reachable? set HF_ENDPOINT): {e}"
            ))
        })
    };
    Ok(ModelFiles {
        weights: Weights::Safetensors {
            config: get("config.json")?,
            weights: get("model.safetensors")?,
        },
        tokenizer: get("tokenizer.json")?,
    })
}

/// BERT configuration and f32 weights named as candle-transformers' `BertModel` expects.
pub struct LoadedWeights {
    pub config: Config,
    pub tensors: HashMap<String, Tensor>,
}

impl Weights {
    /// Read and, for E5S1, dequantise the weights.
    pub fn load(&self, device: &Device) -> Result<LoadedWeights, ModelError> {
        match self {
            Self::E5s1(path) => {
                let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
                    path: path.clone(),
                    source,
                })?;
                // SAFETY: read-only map of a file we do not modify; the map lives
                // only while the weights are dequantised into owned tensors.
                let map =
                    unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ModelError::Io {
                        path: path.clone(),
                        source,
                    })?;
                let parsed = E5s1::parse(&map)?;
                Ok(LoadedWeights {
                    config: parsed.header.bert_config(),
                    tensors: parsed.bert_tensors(device)?,
                })
            }
            Self::Safetensors { config, weights } => load_safetensors(config, weights, device),
        }
    }
}

fn load_safetensors(
    config_path: &Path,
    weights: &Path,
    device: &Device,
) -> Result<LoadedWeights, ModelError> {
    let text = std::fs::read_to_string(config_path).map_err(|source| ModelError::Io {
        path: config_path.to_path_buf(),
        source,
    })?;
    let mut config: Config = serde_json::from_str(&text).map_err(|e| {
        ModelError::Invalid(format!("{}: not a BERT config: {e}", config_path.display()))
    })?;
    let raw = candle_core::safetensors::load(weights, device)?;
    let mut tensors = HashMap::with_capacity(raw.len());
    for (name, tensor) in raw {
        let name = ["bert.", "roberta.", "model."]
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .unwrap_or(&name)
            .to_string();
        tensors.insert(name, tensor);
    }
    // XLM-RoBERTa numbers positions from pad_token_id + 1; BertModel from 0.
    // Dropping the first rows makes the two agree.
    if config.model_type.as_deref() == Some("xlm-roberta") {
        let offset = config.pad_token_id + 1;
        let key = "embeddings.position_embeddings.weight";
        let pos = tensors
            .get(key)
            .ok_or_else(|| ModelError::Invalid(format!("missing tensor {key}")))?;
        let rows = pos.dim(0)?;
        if rows <= offset {
            return Err(ModelError::Invalid(format!(
                "{key} has {rows} rows, fewer than the XLM-R offset {offset}"
            )));
        }
        let trimmed = pos.narrow(0, offset, rows - offset)?;
        config.max_position_embeddings = rows - offset;
        tensors.insert(key.to_string(), trimmed);
    }
    Ok(LoadedWeights { config, tensors })
}

/// Write `source` as a Hugging Face BERT folder (config.json, f32
/// model.safetensors, tokenizer.json) that PyTorch, ONNX exporters and
/// `--model DIR` load. Returns the number of tensors written.
pub fn export_hf(source: &ModelSource, out: &Path) -> Result<usize, ModelError> {
    let files = source.resolve()?;
    let weights = files.weights.load(&Device::Cpu)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let c = &weights.config;
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": match c.hidden_act {
            HiddenAct::Gelu => "gelu",
            HiddenAct::GeluApproximate => "gelu_new",
            HiddenAct::Relu => "relu",
        },
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size,
        "initializer_range": c.initializer_range,
        "layer_norm_eps": c.layer_norm_eps,
        "pad_token_id": c.pad_token_id,
        "position_embedding_type": "absolute",
        "use_cache": false,
        "classifier_dropout": null,
    });
    let config_path = out.join("config.json");
    let text = serde_json::to_string_pretty(&config).expect("a json! value serialises");
    std::fs::write(&config_path, text).map_err(io(&config_path))?;
    candle_core::safetensors::save(&weights.tensors, out.join("model.safetensors"))?;
    let tokenizer = out.join("tokenizer.json");
    std::fs::copy(&files.tokenizer, &tokenizer).map_err(io(&tokenizer))?;
    Ok(weights.tensors.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_and_dir_sources() {
        assert_eq!(
            "hub:intfloat/multilingual-e5-small"
                .parse::<ModelSource>()
                .unwrap(),
            ModelSource::Hub("intfloat/multilingual-e5-small".into())
        );
        assert_eq!(
            "some/dir".parse::<ModelSource>().unwrap(),
            ModelSource::Dir("some/dir".into())
        );
        assert!("hub:no-slash".parse::<ModelSource>().is_err());
        assert!("hub:a/b/c".parse::<ModelSource>().is_err());
    }

    #[test]
    fn missing_folder_says_how_to_fetch() {
        let err = ModelSource::Dir("/nonexistent/kesu-model".into())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("fetch-model.sh"), "{err}");
    }
}
