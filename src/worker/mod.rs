//! The engine's Web Worker: the page never runs the model on its own thread.
//! [`protocol`] is the message format, [`wire`] how it crosses, [`session`] the browser-independent handling (tested
//! natively), `runtime` the wasm glue (fetch with progress, Cache API, WebGPU or CPU).

pub mod protocol;
pub mod session;
pub mod wire;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod runtime;
