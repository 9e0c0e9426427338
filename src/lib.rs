//! attnlab: a real small LLM whose every attention head you can inspect.
//!
//! - [`model`]: GGUF reader, quantized tensors, tokenizers, the decoder block written once
//!   against [`model::arch::Ops`] with a KV cache, an architecture registry (Llama, Gemma 3,
//!   Qwen2, Qwen3, GPT-2), and the attention capture.
//! - [`backends`]: CPU and GPU implementations of those operations.
//! - [`analysis`]: exact quantities from the capture, reports, experiments.
//! - [`generate`]: the model writes — prefill, then one token per step over the KV cache.
//! - [`poster`]: a figure drawn from an exported report (a course page's "poster", no model).
//! - [`settings`]: a figure's settings (URL, element attributes, saved states), checked;
//!   [`tour`]: guided tours (steps of settings and Markdown captions), checked.
//! - [`flows`]: the long runs (knock-out, induction, experiment, cost sweep) written once for
//!   the worker, the CLI and the tests.

pub mod analysis;
pub mod backends;
pub mod flows;
pub mod generate;
pub mod model;
pub mod poster;
pub mod settings;
pub mod tour;
pub mod util;
pub mod worker;

pub use analysis::report::{inspect, HeadSelection, InspectReport};
pub use backends::{cpu::CpuBackend, Backend, EngineError, ForwardOptions, ForwardOutput, LogitsFor};
pub use model::{Model, ModelError};

/// Where `make setup` puts the default model.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Where `make setup` puts the second model, Gemma 3 270M (Gemma Terms of Use).
pub const GEMMA3_MODEL_PATH: &str = "models/gemma-3-270m-q4_k_m.gguf";

#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod app;
