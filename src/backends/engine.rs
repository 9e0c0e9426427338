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

    /// Drops the GPU for the rest of the session (a caller that ran on it and saw it fail),
    /// keeping `note` as the reason.
    pub fn leave_gpu(&self, note: &str) {
        *self.gpu.lock().expect("engine lock") = None;
        *self.note.lock().expect("engine lock") = Some(note.to_string());
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

/// Self-check texts are short: a handful of tokens, run on both backends.
pub const SELF_CHECK_TEXT: &str = "The cat sat on the mat because it was warm.";

/// Whether a GPU pass agrees with the CPU's on the same ids: last-position logits within
/// 1e-2 of their scale, and every attention probability within 2e-3 (the reference tests
/// hold the GPU to 5e-4 and 1e-2·scale; this check catches broken drivers, not rounding).
pub fn agree(gpu: &ForwardOutput, cpu: &ForwardOutput) -> Result<(), String> {
    let n = cpu.logits.ncols();
    let (Some(g), Some(c)) = (gpu.logits.rows().into_iter().next_back(), cpu.logits.rows().into_iter().next_back()) else { return Err("no logits".into()) };
    if g.len() != n {
        return Err("logits of a different size".into());
    }
    let scale = c.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let worst = g.iter().zip(c.iter()).map(|(a, b)| if a.is_finite() { (a - b).abs() } else { f32::INFINITY }).fold(0.0, f32::max);
    if worst > 1e-2 * scale || !worst.is_finite() {
        return Err(format!("last logits differ by {worst:.3e} (scale {scale:.1})"));
    }
    if let (Some(tg), Some(tc)) = (&gpu.trace, &cpu.trace) {
        for l in 0..tc.n_layer {
            for h in 0..tc.n_head {
                for i in 0..tc.n_tokens {
                    let (a, b) = (tg.row(l, h, i).map_err(|e| e.to_string())?, tc.row(l, h, i).map_err(|e| e.to_string())?);
                    let d = a.iter().zip(&b).map(|(x, y)| if x.is_finite() { (x - y).abs() } else { f32::INFINITY }).fold(0.0, f32::max);
                    if d > 2e-3 {
                        return Err(format!("attention of layer {l} head {h}, row {i}, differs by {d:.3e}"));
                    }
                }
            }
        }
    }
    Ok(())
}

impl Engine {
    /// Runs `ids` on the GPU and the CPU; when they disagree (or the GPU fails), drops the GPU
    /// and keeps a note saying why. Returns that disagreement.
    pub async fn self_check(&self, model: &Model, ids: &[u32]) -> Result<(), String> {
        let Some(gpu) = self.gpu() else { return Ok(()) };
        let opts = ForwardOptions { logits_for: super::LogitsFor::Last, ..Default::default() };
        let cpu = CpuBackend::new().forward(model, ids, &opts).map_err(|e| e.to_string())?;
        let verdict = match gpu.forward_async(model, ids, &opts).await {
            Ok(g) => agree(&g, &cpu),
            Err(e) => Err(e.to_string()),
        };
        if let Err(why) = &verdict {
            *self.gpu.lock().expect("engine lock") = None;
            *self.note.lock().expect("engine lock") = Some(format!("the GPU's self-check disagreed with the CPU ({why}); running on the CPU"));
        }
        verdict
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
