//! GPU-side attention maps recomputed from a captured pass's Q, K and LSE
//! (`attention_maps.wgsl`): one head's full map, a pooled map, every row's mass on a span of
//! keys. The product reads captures back and computes these on the CPU; the tests hold these
//! kernels to the CPU's numbers (built with the `test-support` feature only).

use bytemuck::{Pod, Zeroable};

use super::context::{sources, sources::DotOperands, GpuContext, GpuError, Slot};
use super::ops::{AttnShape, NAIVE_TILE};
use super::GpuBackend;
use crate::backends::EngineError;

/// Per-layer post-RoPE Q, K and LSE of a forward pass, resident on the device.
pub struct GpuTrace {
    /// Per layer (the window differs between layers).
    pub shapes: Vec<AttnShape>,
    pub layers: Vec<(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>, // q (n, n_head·hd), k (n, n_kv·hd), lse (n, n_head)
}

impl GpuBackend {
    #[cfg(not(target_arch = "wasm32"))]
    fn with_last_trace<T>(&self, layer: usize, f: impl FnOnce(&GpuContext, AttnShape, &(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)) -> Result<T, GpuError>) -> Result<T, EngineError> {
        let guard = self.last_trace.lock().expect("trace lock");
        let t = guard.as_ref().ok_or_else(|| EngineError::Unavailable("gpu".into(), "no captured forward pass yet".into()))?;
        let l = t.layers.get(layer).ok_or_else(|| EngineError::Unavailable("gpu".into(), format!("layer {layer} does not exist")))?;
        Ok(f(&self.ctx, t.shapes[layer], l)?)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn check_head(&self, head: usize) -> Result<(), EngineError> {
        let guard = self.last_trace.lock().expect("trace lock");
        match guard.as_ref() {
            Some(t) if t.shapes.first().is_some_and(|s| head < s.n_head) => Ok(()),
            _ => Err(EngineError::Unavailable("gpu".into(), format!("head {head} does not exist or nothing was captured"))),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// One head's full (n, n) probability map from the last pass, computed on the GPU.
    pub fn head_probs(&self, layer: usize, head: usize) -> Result<Vec<f32>, EngineError> {
        self.check_head(head)?;
        self.with_last_trace(layer, |ctx, s, (q, k, lse)| {
            let out = ctx.scratch("probs", s.n * s.n);
            let mut enc = ctx.encoder("head probs");
            attention_probs(ctx, &mut enc, s, q, k, lse, head, &out);
            let staged = ctx.stage(&mut enc, &[(&out, s.n * s.n)]);
            ctx.queue.submit([enc.finish()]);
            Ok(pollster::block_on(ctx.read_staged_async(staged))?.remove(0))
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// One head's map pooled over `block`² tiles, computed on the GPU (same layout as
    /// [`crate::model::capture::PooledMap`], NaN above the diagonal).
    pub fn head_pooled(&self, layer: usize, head: usize, block: usize) -> Result<crate::model::capture::PooledMap, EngineError> {
        self.check_head(head)?;
        let block = block.max(1);
        self.with_last_trace(layer, |ctx, s, (q, k, lse)| {
            let side = s.n.div_ceil(block);
            let out = ctx.scratch("pooled", 2 * side * side);
            let mut enc = ctx.encoder("pooled map");
            attention_pooled(ctx, &mut enc, s, q, k, lse, head, block, &out);
            let staged = ctx.stage(&mut enc, &[(&out, 2 * side * side)]);
            ctx.queue.submit([enc.finish()]);
            let v = pollster::block_on(ctx.read_staged_async(staged))?.remove(0);
            let mean = v[side * side..].iter().map(|&m| if m < 0.0 { f32::NAN } else { m }).collect();
            Ok(crate::model::capture::PooledMap { n_tokens: s.n, block, side, max: v[..side * side].to_vec(), mean })
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// (n_head, n): every row's mass on `keys` in `layer`, computed on the GPU. Sink mass
    /// is the mean of rows 1..n with keys 0..1.
    pub fn row_mass(&self, layer: usize, keys: std::ops::Range<usize>) -> Result<Vec<f32>, EngineError> {
        self.with_last_trace(layer, |ctx, s, (q, k, lse)| {
            let out = ctx.scratch("row mass", s.n_head * s.n);
            let mut enc = ctx.encoder("row mass");
            attention_row_mass(ctx, &mut enc, s, q, k, lse, keys, &out);
            let staged = ctx.stage(&mut enc, &[(&out, s.n_head * s.n)]);
            ctx.queue.submit([enc.finish()]);
            Ok(pollster::block_on(ctx.read_staged_async(staged))?.remove(0))
        })
    }
}


#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MapParams {
    n: u32,
    n_head: u32,
    n_kv: u32,
    group: u32,
    head: u32,
    block: u32,
    side: u32,
    k_lo: u32,
    k_hi: u32,
    scale: f32,
    window: u32,
    _pad: u32,
}

fn map_kernel(ctx: &GpuContext, s: AttnShape, entry: &str) -> std::sync::Arc<super::context::Kernel> {
    ctx.kernel(&format!("maps/{entry}/{}", s.head_dim), || sources::with_head_dim(sources::ATTENTION_MAPS, s.head_dim, DotOperands::Storage), entry, &[Slot::Uniform, Slot::Read, Slot::Read, Slot::Read, Slot::ReadWrite])
}

fn map_params(s: AttnShape, head: usize, block: usize, side: usize, keys: std::ops::Range<usize>) -> MapParams {
    MapParams {
        n: s.n as u32,
        n_head: s.n_head as u32,
        n_kv: s.n_kv as u32,
        group: s.group() as u32,
        head: head as u32,
        block: block as u32,
        side: side as u32,
        k_lo: keys.start as u32,
        k_hi: keys.end.min(u32::MAX as usize) as u32,
        scale: 1.0 / (s.head_dim as f32).sqrt(),
        window: s.window.unwrap_or(0) as u32,
        _pad: 0,
    }
}

/// out (n, n): exact probabilities of one head, recomputed from q, k and lse.
pub fn attention_probs(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, s: AttnShape, q: &wgpu::Buffer, k: &wgpu::Buffer, lse: &wgpu::Buffer, head: usize, out: &wgpu::Buffer) {
    let kern = map_kernel(ctx, s, "probs");
    let u = ctx.uniform("probs params", &map_params(s, head, 1, 0, 0..0));
    let g = (s.n as u32).div_ceil(NAIVE_TILE);
    ctx.dispatch(enc, "attention probs", &kern, &[&u, q, k, lse, out], (g, g, 1));
}

/// out (2, side, side): max then causal mean (−1 above the diagonal) over `block`² tiles.
pub fn attention_pooled(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, s: AttnShape, q: &wgpu::Buffer, k: &wgpu::Buffer, lse: &wgpu::Buffer, head: usize, block: usize, out: &wgpu::Buffer) -> usize {
    let side = s.n.div_ceil(block);
    let kern = map_kernel(ctx, s, "pooled");
    let u = ctx.uniform("pooled params", &map_params(s, head, block, side, 0..0));
    let g = (side as u32).div_ceil(NAIVE_TILE);
    ctx.dispatch(enc, "attention pooled", &kern, &[&u, q, k, lse, out], (g, g, 1));
    side
}

/// out (n_head, n): each row's mass on keys `keys` (clipped to the causal range).
pub fn attention_row_mass(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, s: AttnShape, q: &wgpu::Buffer, k: &wgpu::Buffer, lse: &wgpu::Buffer, keys: std::ops::Range<usize>, out: &wgpu::Buffer) {
    let kern = map_kernel(ctx, s, "row_mass");
    let u = ctx.uniform("row mass params", &map_params(s, 0, 1, 0, keys));
    ctx.dispatch(enc, "attention row mass", &kern, &[&u, q, k, lse, out], ((s.n as u32).div_ceil(NAIVE_TILE), (s.n_head as u32).div_ceil(NAIVE_TILE), 1));
}
