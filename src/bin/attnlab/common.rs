//! What the commands share: reading `--text`, loading the model, choosing the backend.

use std::io::Read;

use attnlab::backends::engine::Engine;
use attnlab::util::Clock;
use attnlab::Model;

use crate::BackendChoice;

pub fn read_text(t: &str) -> Result<String, String> {
    if t == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(s)
    } else {
        Ok(t.to_string())
    }
}

pub fn load(path: &str) -> Result<(Model, f64), String> {
    let clock = Clock::start();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read model '{path}': {e} (run `make setup` to fetch the default model)"))?;
    let model = Model::from_gguf_vec(bytes).map_err(|e| format!("cannot load '{path}': {e}"))?;
    Ok((model, clock.ms()))
}

/// The engine for `--backend`: the GPU one falls back to the CPU (with a note) if the GPU
/// fails mid-run, through the same path the page's worker uses.
pub fn backend(choice: BackendChoice) -> Result<Engine, String> {
    match choice {
        BackendChoice::Cpu => Ok(Engine::cpu()),
        BackendChoice::Gpu => match attnlab::backends::gpu::GpuBackend::new() {
            Ok(b) => Ok(Engine::with_gpu(b)),
            Err(e) => Err(format!("{e}; use --backend cpu, or WGPU_BACKEND=vulkan with Mesa's lavapipe (mesa-vulkan-drivers) for a software GPU")),
        },
    }
}

/// Says on stderr when the engine left the GPU.
pub fn report_fallback(engine: &Engine) {
    if let Some(note) = engine.take_note() {
        eprintln!("attnlab: {note}");
    }
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
