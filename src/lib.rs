//! attnlab: a real small LLM whose every attention head you can inspect.
//!
//! - [`model`]: GGUF reader, quantized tensors, tokenizer, Llama weights.
//! - [`backends`]: the forward pass (CPU now; WebGPU behind the same trait).
//! - [`analysis`]: attention capture (Q, K, log-sum-exp) and exact quantities from it.

pub mod analysis;
pub mod backends;
pub mod model;
pub mod util;
pub mod worker;

pub use analysis::report::{inspect, HeadSelection, InspectReport};
pub use backends::{cpu::CpuBackend, Backend, EngineError, ForwardOptions, ForwardOutput, LogitsFor};
pub use model::{Model, ModelError};

/// Where `make setup` puts the default model.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod app;
