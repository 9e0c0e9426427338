//! The model as stored in a GGUF file: the reader ([`gguf`]), quantized blocks ([`quant`]),
//! the tokenizer ([`tokenizer`]), the operations a forward pass is written in ([`arch`]), one
//! file per architecture ([`llama`], [`gemma3`]) and what a pass captures ([`capture`]).

pub mod arch;
pub mod capture;
pub mod gemma3;
pub mod gguf;
pub mod llama;
pub mod quant;
pub mod tokenizer;

use std::sync::Arc;

pub use arch::{ForwardOptions, LogitsFor, Ops, Recorded, Vector};
pub use gemma3::Gemma3Weights;
pub use llama::{Config, LlamaConfig, LlamaWeights, ModelError, ModelInfo};

use gguf::Gguf;
use quant::QTensor;
use tokenizer::Tokenizer;

/// The weights of one architecture.
#[derive(Debug)]
pub enum Weights {
    Llama(LlamaWeights),
    Gemma3(Gemma3Weights),
}

/// A loaded model: hyper-parameters, quantized weights, tokenizer.
#[derive(Debug)]
pub struct Model {
    pub config: Config,
    pub weights: Weights,
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
        if arch != "llama" && arch != "gemma3" {
            return Err(ModelError::UnknownArchitecture(arch));
        }
        let mut c = Config::from_gguf(&g, &arch)?;
        for t in &g.tensors {
            if t.name.ends_with(".bias") {
                return Err(ModelError::UnsupportedFeature(format!("bias tensors ('{}')", t.name)));
            }
            if t.name == "rope_freqs.weight" {
                return Err(ModelError::UnsupportedFeature("per-frequency RoPE factors (rope_freqs.weight, Llama 3.1 style)".into()));
            }
        }
        let tokenizer = Tokenizer::from_gguf(&g)?;
        if tokenizer.vocab_size() != c.vocab_size {
            return Err(ModelError::BadHyperParameter {
                key: "tokenizer.ggml.tokens".into(),
                value: tokenizer.vocab_size().to_string(),
                why: format!("the vocabulary size differs from token_embd.weight's {} rows", c.vocab_size),
            });
        }
        let weights = match arch.as_str() {
            "gemma3" => {
                gemma3::configure(&g, &mut c)?;
                Weights::Gemma3(Gemma3Weights::load(&g, &file, &c)?)
            }
            _ => Weights::Llama(LlamaWeights::load(&g, &file, &c)?),
        };
        let mut types = std::collections::BTreeMap::new();
        for t in &g.tensors {
            *types.entry(t.ty.name().to_string()).or_insert(0usize) += 1;
        }
        let info = ModelInfo {
            name: g.get_str("general.name").unwrap_or("unnamed").to_string(),
            architecture: arch,
            file_bytes: bytes.len(),
            weight_bytes: g.tensors.iter().map(|t| t.data_range.len()).sum(),
            tensor_types: types.into_iter().collect(),
            tied_output: match &weights {
                Weights::Llama(w) => w.output.is_none(),
                Weights::Gemma3(_) => true,
            },
            content_hash: content_hash(bytes),
        };
        Ok(Model { config: c, weights, tokenizer, info })
    }

    /// Records the forward pass of `ids` on a backend's operations (inputs already checked).
    pub fn record<O: Ops>(&self, o: &mut O, ids: &[u32], opts: &ForwardOptions) -> Recorded<O::Buf> {
        match &self.weights {
            Weights::Llama(w) => w.forward(o, &self.config, ids, opts),
            Weights::Gemma3(w) => w.forward(o, &self.config, ids, opts),
        }
    }

    /// Every weight (matrices, vectors), for backends that upload them.
    pub fn tensors(&self) -> (Vec<&QTensor>, Vec<&Vector>) {
        match &self.weights {
            Weights::Llama(w) => w.tensors(),
            Weights::Gemma3(w) => w.tensors(),
        }
    }
}

/// A fast 64-bit hash of `bytes`, eight at a time (multiply–rotate, then an avalanche): not
/// cryptographic, only to tell weights apart (GPU weight caching). ~100 MB in well under a
/// second, in the browser too.
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
