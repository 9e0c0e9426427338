//! The model as stored in a GGUF file: the reader ([`gguf`]), quantized blocks ([`quant`]),
//! the tokenizer ([`tokenizer`]) and the Llama architecture ([`llama`]).

pub mod gguf;
pub mod llama;
pub mod quant;
pub mod tokenizer;

pub use llama::{LlamaConfig, Model, ModelError};
