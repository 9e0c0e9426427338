//! The model as stored in a GGUF file: the reader ([`gguf`]), quantized blocks ([`quant`]),
//! the tokenizer ([`tokenizer`]), the operations a forward pass is written in ([`arch`]), the
//! decoder block written once ([`block`]) over shared loaders ([`load`]) and hyper-parameters
//! ([`config`]), one file per architecture ([`llama`], [`gemma3`], [`qwen2`], [`qwen3`],
//! [`gpt2`]) listed in one table ([`registry`]), and what a pass captures ([`capture`]).

pub mod arch;
pub mod block;
pub mod capture;
pub mod chat;
pub mod config;
pub mod gemma3;
pub mod gguf;
pub mod gpt2;
pub mod llama;
pub mod load;
pub mod quant;
pub mod qwen2;
pub mod qwen3;
pub mod registry;
pub mod tokenizer;

use std::sync::Arc;

pub use arch::{ForwardOptions, KvCache, LogitsFor, Ops, Recorded, Vector};
pub use block::Transformer;
pub use config::{Config, ModelError, Positions};

use gguf::Gguf;
use load::Loader;
use quant::QTensor;
use tokenizer::Tokenizer;

/// A loaded model: hyper-parameters, quantized weights, tokenizer.
#[derive(Debug)]
pub struct Model {
    pub config: Config,
    pub weights: Transformer,
    pub tokenizer: Tokenizer,
    pub info: ModelInfo,
}

impl Model {
    /// Loads a model from a copy of the bytes of a GGUF file.
    pub fn from_gguf_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        Self::from_gguf_vec(bytes.to_vec())
    }

    /// Loads a model from a GGUF file's bytes, keeping them: the weights stay where they are,
    /// still quantized, so resident memory is the file plus activations.
    pub fn from_gguf_vec(file: Vec<u8>) -> Result<Model, ModelError> {
        let file = Arc::new(file);
        let bytes: &[u8] = &file;
        let g = Gguf::parse(bytes)?;
        let arch = g.get_str("general.architecture")?.to_string();
        let spec = registry::find(&arch).ok_or_else(|| ModelError::UnknownArchitecture(arch.clone()))?;
        let mut c = Config::from_gguf(&g, &arch, spec.norm, spec.positions, spec.rope_style)?;
        (spec.configure)(&g, &mut c)?;
        let tokenizer = Tokenizer::from_gguf(&g)?;
        if tokenizer.vocab_size() != c.vocab_size {
            return Err(ModelError::BadHyperParameter {
                key: "tokenizer.ggml.tokens".into(),
                value: tokenizer.vocab_size().to_string(),
                why: format!("the vocabulary size differs from token_embd.weight's {} rows", c.vocab_size),
            });
        }
        let loader = Loader::new(&g, &file);
        let weights = Transformer::load(&loader, &c, spec)?;
        loader.check_biases_used()?;
        let mut types = std::collections::BTreeMap::new();
        for t in &g.tensors {
            *types.entry(t.ty.name().to_string()).or_insert(0usize) += 1;
        }
        let info = ModelInfo {
            name: g.get_str("general.name").unwrap_or("unnamed").to_string(),
            display_name: display_name(
                g.get_str("general.name").unwrap_or(""),
                g.get_str("general.basename").unwrap_or(""),
                g.get_str("general.size_label").unwrap_or(""),
                g.get_str("general.finetune").unwrap_or(""),
                bytes.len(),
            ),
            architecture: arch,
            file_bytes: bytes.len(),
            weight_bytes: g.tensors.iter().map(|t| t.data_range.len()).sum(),
            tensor_types: types.into_iter().collect(),
            tied_output: weights.output.is_none(),
            content_hash: content_hash(bytes),
        };
        Ok(Model { config: c, weights, tokenizer, info })
    }

    /// Records the forward pass of `ids` on a backend's operations (inputs already checked):
    /// a fresh KV cache of exactly `ids.len()` tokens, which becomes the capture's K and V.
    pub fn record<O: Ops>(&self, o: &mut O, ids: &[u32], opts: &ForwardOptions) -> Recorded<O::Buf> {
        let mut cache = self.new_cache(o, ids.len());
        let rec = self.weights.forward(o, &self.config, ids, &mut cache, opts);
        rec.with_cache(cache)
    }

    /// An empty KV cache with room for `capacity` tokens on `o`'s backend.
    pub fn new_cache<O: Ops>(&self, o: &mut O, capacity: usize) -> KvCache<O::Buf> {
        KvCache::new(o, self.config.n_layer, self.config.kv_dim(), capacity)
    }

    /// Records `ids` as the next positions after what `cache` holds, appending to it: prefill
    /// (many tokens) or one decoding step (one token). The capture has this pass's rows only.
    pub fn step<O: Ops>(&self, o: &mut O, ids: &[u32], cache: &mut KvCache<O::Buf>, opts: &ForwardOptions) -> Recorded<O::Buf> {
        self.weights.forward(o, &self.config, ids, cache, opts)
    }

    /// Every weight (matrices, vectors), for backends that upload them.
    pub fn tensors(&self) -> (Vec<&QTensor>, Vec<&Vector>) {
        self.weights.tensors()
    }
}

/// Descriptive facts for the UI and the CLI.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// `general.name` as written in the file (exports keep it).
    pub name: String,
    /// The name a reader knows the model by ("SmolLM2-135M-Instruct", "Gemma 3 270M"):
    /// [`crate::model::display_name`].
    pub display_name: String,
    pub architecture: String,
    pub file_bytes: usize,
    pub weight_bytes: usize,
    pub tensor_types: Vec<(String, usize)>,
    pub tied_output: bool,
    /// A 64-bit hash of the whole file ([`crate::model::content_hash`]): two files with the
    /// same name and size but other weights differ here.
    pub content_hash: u64,
}

/// A fast 64-bit hash of `bytes`, eight at a time (multiply–rotate, then an avalanche): not
/// cryptographic, only to tell weights apart (GPU weight caching). ~100 MB in well under a
/// second, in the browser too.
/// Files the site ships or the README names, by (`general.name`, file size): the name their
/// readers know them by. A file's `general.name` is often a training-run label ("Smollm2 135M
/// 8k Lc100K Mix1 Ep2") that says neither the family nor that it is the instruct model.
const KNOWN_FILES: [(&str, usize, &str); 2] = [
    ("Smollm2 135M 8k Lc100K Mix1 Ep2", 98_362_432, "SmolLM2-135M-Instruct"),
    ("Gemma 3 270m", 253_113_024, "Gemma 3 270M"),
];

/// The model's name for readers: a known file's name; else its family and size from
/// `general.basename` and `general.size_label` (with a one-word fine-tune such as "Instruct");
/// else `general.name` cut to 40 characters; else "an unnamed model". `file_bytes` 0 means
/// unknown (a saved report carries only the name).
pub fn display_name(general_name: &str, basename: &str, size_label: &str, finetune: &str, file_bytes: usize) -> String {
    if let Some(k) = KNOWN_FILES.iter().find(|k| k.0 == general_name && (file_bytes == 0 || k.1 == file_bytes)) {
        return k.2.to_string();
    }
    let family = match basename.to_ascii_lowercase().as_str() {
        "" => String::new(),
        "smollm2" => "SmolLM2".into(),
        "smollm" => "SmolLM".into(),
        "gemma-3" | "gemma3" => "Gemma 3".into(),
        "gemma-2" | "gemma2" => "Gemma 2".into(),
        "llama-3.2" => "Llama 3.2".into(),
        "qwen2.5" => "Qwen2.5".into(),
        "gpt2" | "gpt-2" => "GPT-2".into(),
        other => {
            let mut c = other.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
        }
    };
    if !family.is_empty() {
        let mut out = family;
        if !size_label.is_empty() {
            out.push(if out.contains(' ') { ' ' } else { '-' });
            out.push_str(&size_label.to_ascii_uppercase());
        }
        let f = finetune.trim();
        if !f.is_empty() && f.chars().all(|c| c.is_ascii_alphabetic()) && f.len() <= 12 {
            let mut c = f.chars();
            let word: String = c.next().map(|x| x.to_uppercase().chain(c).collect()).unwrap_or_default();
            out.push(if out.contains(' ') { ' ' } else { '-' });
            out.push_str(&word);
        }
        return out;
    }
    let name = general_name.trim();
    if name.is_empty() {
        return "an unnamed model".into();
    }
    if name.chars().count() > 40 {
        format!("{}…", name.chars().take(39).collect::<String>())
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod name_tests {
    use super::display_name;

    #[test]
    fn readers_get_family_and_size_not_a_training_label() {
        assert_eq!(display_name("Smollm2 135M 8k Lc100K Mix1 Ep2", "smollm2", "135M", "8k-lc100k-mix1-ep2", 98_362_432), "SmolLM2-135M-Instruct");
        assert_eq!(display_name("Gemma 3 270m", "gemma-3", "270M", "", 253_113_024), "Gemma 3 270M");
        // A saved report has the name only.
        assert_eq!(display_name("Smollm2 135M 8k Lc100K Mix1 Ep2", "", "", "", 0), "SmolLM2-135M-Instruct");
        // Another file of a known family: family and size, a one-word fine-tune kept, run labels not.
        assert_eq!(display_name("Smollm2 360M 8k Lc100K Mix1 Ep2", "smollm2", "360M", "8k-lc100k-mix1-ep2", 1), "SmolLM2-360M");
        assert_eq!(display_name("Qwen2.5 0.5B Instruct", "qwen2.5", "0.5B", "instruct", 1), "Qwen2.5-0.5B-Instruct");
        assert_eq!(display_name("Gemma 3 1b It", "gemma-3", "1b", "it", 1), "Gemma 3 1B It");
        assert_eq!(display_name("tinyllama", "tinyllama", "", "", 1), "Tinyllama");
        // No basename: general.name, cut when it is long; nothing at all: said so.
        assert_eq!(display_name("My Model", "", "", "", 1), "My Model");
        assert_eq!(display_name(&"x".repeat(60), "", "", "", 1).chars().count(), 40);
        assert_eq!(display_name("  ", "", "", "", 1), "an unnamed model");
    }
}

pub fn content_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(31);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^ (h >> 33)
}

#[cfg(test)]
mod hash_tests {
    use super::content_hash;

    #[test]
    fn one_changed_byte_changes_the_hash() {
        let a: Vec<u8> = (0..10_007u32).map(|i| (i * 31 % 251) as u8).collect();
        let h = content_hash(&a);
        assert_eq!(h, content_hash(&a.clone()));
        for i in [0, 7, 8, 5000, 10_006] {
            let mut b = a.clone();
            b[i] ^= 1;
            assert_ne!(content_hash(&b), h, "byte {i}");
        }
        assert_ne!(content_hash(&a[..10_006]), h);
        assert_ne!(content_hash(&[]), content_hash(&[0]));
    }
}
