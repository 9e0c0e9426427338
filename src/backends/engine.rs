//! The one place where a GPU failure turns into a CPU run. The worker (page and widgets), the
//! CLI (`inspect`, `position`) and the experiment loops all run their forward passes through
//! an [`Engine`]: the GPU when it has one, and when the GPU reports itself unusable mid-run
//! (device lost, out of memory, a model its kernels cannot run) the same request is run on the
//! CPU, the GPU is dropped for the rest of the session, and [`Engine::take_note`] says why.

use std::sync::{Arc, Mutex};

use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::{Backend, EngineError, ForwardOptions, ForwardOutput};
use crate::model::Model;

pub struct Engine {
    gpu: Mutex<Option<Arc<GpuBackend>>>,
    note: Mutex<Option<String>>,
}

impl Engine {
    /// CPU only.
    pub fn cpu() -> Self {
        Engine { gpu: Mutex::new(None), note: Mutex::new(None) }
    }

    /// The GPU first, the CPU when it fails.
    pub fn with_gpu(gpu: GpuBackend) -> Self {
        Engine { gpu: Mutex::new(Some(Arc::new(gpu))), note: Mutex::new(None) }
    }

    /// The GPU backend while it is in use.
    pub fn gpu(&self) -> Option<Arc<GpuBackend>> {
        self.gpu.lock().expect("engine lock").clone()
    }

    /// Why the engine left the GPU, once.
    pub fn take_note(&self) -> Option<String> {
        self.note.lock().expect("engine lock").take()
    }

    /// "webgpu"-style short name of what runs now.
    pub fn backend_name(&self) -> &'static str {
        if self.gpu().is_some() {
            "gpu"
        } else {
            "cpu"
        }
    }

    /// The forward pass, awaiting only the GPU readback (browser and native alike).
    pub async fn forward_async(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError> {
        if let Some(gpu) = self.gpu() {
            match gpu.forward_async(model, ids, opts).await {
                Err(EngineError::Unavailable(_, why)) => {
                    *self.gpu.lock().expect("engine lock") = None;
                    *self.note.lock().expect("engine lock") = Some(format!("the GPU failed ({why}); running on the CPU"));
                }
                r => return r,
            }
        }
        CpuBackend::new().forward(model, ids, opts)
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::cpu()
    }
}

impl Backend for Engine {
    fn name(&self) -> &'static str {
        self.backend_name()
    }

    fn describe(&self) -> String {
        match self.gpu() {
            Some(g) => format!("GPU, {}", g.ctx.describe()),
            None => CpuBackend::new().describe(),
        }
    }

    fn forward(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError> {
        pollster::block_on(self.forward_async(model, ids, opts))
    }
}
