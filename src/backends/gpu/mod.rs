//! The GPU backend: the whole Llama forward pass in WGSL (`shaders/`), recorded into one
//! command encoder per pass, with the tiled flash-attention kernel; only what was asked
//! (logits, and Q/K/LSE for the attention trace) is read back.

pub mod context;
pub mod ops;
pub mod weights;

use std::sync::Mutex;

#[cfg(not(target_arch = "wasm32"))]
use super::Backend;
use super::{validate_input, EngineError, ForwardOptions, ForwardOutput, ForwardTimings, LogitsFor};
use crate::analysis::trace::{AttentionTrace, LayerTrace};
use crate::model::Model;
use crate::util::Clock;
use context::{GpuContext, GpuError};
use ndarray::Array2;
use ops::AttnShape;
use weights::{fingerprint, GpuWeights};

impl From<GpuError> for EngineError {
    fn from(e: GpuError) -> Self {
        EngineError::Unavailable("gpu".into(), e.to_string())
    }
}

pub struct GpuBackend {
    pub ctx: GpuContext,
    weights: Mutex<Option<GpuWeights>>,
    /// The last captured forward pass, still on the device, for GPU-side analysis.
    last_trace: Mutex<Option<GpuTrace>>,
}

/// Per-layer post-RoPE Q, K and LSE of a forward pass, resident on the device.
pub struct GpuTrace {
    pub shape: AttnShape,
    pub layers: Vec<(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>, // q (n, n_head·hd), k (n, n_kv·hd), lse (n_head, n)
}

impl GpuBackend {
    #[cfg(not(target_arch = "wasm32"))]
    fn with_last_trace<T>(&self, layer: usize, f: impl FnOnce(&GpuContext, AttnShape, &(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)) -> Result<T, GpuError>) -> Result<T, EngineError> {
        let guard = self.last_trace.lock().expect("trace lock");
        let t = guard.as_ref().ok_or_else(|| EngineError::Unavailable("gpu".into(), "no captured forward pass yet".into()))?;
        let l = t.layers.get(layer).ok_or_else(|| EngineError::Unavailable("gpu".into(), format!("layer {layer} does not exist")))?;
        Ok(f(&self.ctx, t.shape, l)?)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn check_head(&self, head: usize) -> Result<(), EngineError> {
        let guard = self.last_trace.lock().expect("trace lock");
        match guard.as_ref() {
            Some(t) if head < t.shape.n_head => Ok(()),
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
            ops::attention_probs(ctx, &mut enc, s, q, k, lse, head, &out);
            let staged = ctx.stage(&mut enc, &[(&out, s.n * s.n)]);
            ctx.queue.submit([enc.finish()]);
            Ok(pollster::block_on(ctx.read_staged_async(staged))?.remove(0))
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// One head's map pooled over `block`² tiles, computed on the GPU (same layout as
    /// [`crate::analysis::trace::PooledMap`], NaN above the diagonal).
    pub fn head_pooled(&self, layer: usize, head: usize, block: usize) -> Result<crate::analysis::trace::PooledMap, EngineError> {
        self.check_head(head)?;
        let block = block.max(1);
        self.with_last_trace(layer, |ctx, s, (q, k, lse)| {
            let side = s.n.div_ceil(block);
            let out = ctx.scratch("pooled", 2 * side * side);
            let mut enc = ctx.encoder("pooled map");
            ops::attention_pooled(ctx, &mut enc, s, q, k, lse, head, block, &out);
            let staged = ctx.stage(&mut enc, &[(&out, 2 * side * side)]);
            ctx.queue.submit([enc.finish()]);
            let v = pollster::block_on(ctx.read_staged_async(staged))?.remove(0);
            let mean = v[side * side..].iter().map(|&m| if m < 0.0 { f32::NAN } else { m }).collect();
            Ok(crate::analysis::trace::PooledMap { n_tokens: s.n, block, side, max: v[..side * side].to_vec(), mean })
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// (n_head, n): every row's mass on `keys` in `layer`, computed on the GPU. Sink mass
    /// is the mean of rows 1..n with keys 0..1.
    pub fn row_mass(&self, layer: usize, keys: std::ops::Range<usize>) -> Result<Vec<f32>, EngineError> {
        self.with_last_trace(layer, |ctx, s, (q, k, lse)| {
            let out = ctx.scratch("row mass", s.n_head * s.n);
            let mut enc = ctx.encoder("row mass");
            ops::attention_row_mass(ctx, &mut enc, s, q, k, lse, keys, &out);
            let staged = ctx.stage(&mut enc, &[(&out, s.n_head * s.n)]);
            ctx.queue.submit([enc.finish()]);
            Ok(pollster::block_on(ctx.read_staged_async(staged))?.remove(0))
        })
    }
}

impl GpuBackend {
    /// Opens the GPU (native: blocking; in the browser use `GpuContext::new().await`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self, GpuError> {
        Ok(Self::with_context(GpuContext::new_blocking()?))
    }

    pub fn with_context(ctx: GpuContext) -> Self {
        GpuBackend { ctx, weights: Mutex::new(None), last_trace: Mutex::new(None) }
    }

    /// Uploads `model`'s weights unless they are already resident.
    pub fn prepare(&self, model: &Model) {
        let mut w = self.weights.lock().expect("weights lock");
        if w.as_ref().map(|w| w.fingerprint != fingerprint(model)).unwrap_or(true) {
            *w = Some(GpuWeights::upload(&self.ctx, model));
        }
    }

    /// The forward pass; awaits only the final readback (no blocking poll in the browser).
    pub async fn forward_async(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError> {
        validate_input(model, ids, opts)?;
        let c = &model.config;
        if c.head_dim % 4 != 0 || c.group_size() > ops::FLASH_WG as usize {
            return Err(EngineError::Unavailable("gpu".into(), format!("the GPU kernels need a head size divisible by 4 and at most {} query heads per KV head (this model: {}, {})", ops::FLASH_WG, c.head_dim, c.group_size())));
        }
        Ok(self.run(model, ids, opts).await?)
    }

    async fn run(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, GpuError> {
        let clock = Clock::start();
        self.prepare(model);
        let guard = self.weights.lock().expect("weights lock");
        let w = guard.as_ref().expect("prepared above");
        self.ctx.check_lost()?;
        let ctx = &self.ctx;
        let c = &model.config;
        let n = ids.len();
        let (d, q_dim, kv_dim) = (c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let shape = AttnShape { n, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: c.head_dim };

        let ids_buf = ctx.upload("ids", ids); // (n) u32
        let table = ctx.upload("rope table", &ops::rope_table(n, c.rope_dim, c.rope_base)); // (n, rope_dim/2, 2)
        let x = ctx.scratch("residual", n * d); // (n, d)
        let xn = ctx.scratch("normed", n * d); // (n, d)
        let attn = ctx.scratch("attention out", n * q_dim); // (n, n_head·hd)
        let proj = ctx.scratch("projection", n * d); // (n, d)
        let gate = ctx.scratch("ffn gate", n * c.n_ff); // (n, n_ff)
        let up = ctx.scratch("ffn up", n * c.n_ff); // (n, n_ff)
        let v = ctx.scratch("v", n * kv_dim); // (n, n_kv·hd)
        // Q, K (n, ·) and LSE (n_head, n): one set per layer when captured, else reused.
        let per_layer = if opts.capture_attention { c.n_layer } else { 1 };
        let qs: Vec<_> = (0..per_layer).map(|_| ctx.scratch("q", n * q_dim)).collect();
        let ks: Vec<_> = (0..per_layer).map(|_| ctx.scratch("k", n * kv_dim)).collect();
        let lses: Vec<_> = (0..per_layer).map(|_| ctx.scratch("lse", c.n_head * n)).collect();

        let mut enc = ctx.encoder("forward");
        ops::embed(ctx, &mut enc, &ids_buf, n, &w.token_embd, &x);
        for (i, layer) in w.layers.iter().enumerate() {
            let slot = if opts.capture_attention { i } else { 0 };
            let (q, k, lse) = (&qs[slot], &ks[slot], &lses[slot]);
            ops::rmsnorm(ctx, &mut enc, &x, &layer.attn_norm, &xn, n, d, c.rms_eps);
            ops::matmul(ctx, &mut enc, &xn, 0, n, &layer.attn_q, q);
            ops::matmul(ctx, &mut enc, &xn, 0, n, &layer.attn_k, k);
            ops::matmul(ctx, &mut enc, &xn, 0, n, &layer.attn_v, &v);
            ops::rope(ctx, &mut enc, q, &table, n, c.n_head, c.head_dim, c.rope_dim);
            ops::rope(ctx, &mut enc, k, &table, n, c.n_head_kv, c.head_dim, c.rope_dim);
            ops::flash_attention(ctx, &mut enc, shape, q, k, &v, &attn, lse);
            ops::matmul(ctx, &mut enc, &attn, 0, n, &layer.attn_output, &proj);
            ops::add(ctx, &mut enc, &x, &proj, n * d);
            ops::rmsnorm(ctx, &mut enc, &x, &layer.ffn_norm, &xn, n, d, c.rms_eps);
            ops::matmul(ctx, &mut enc, &xn, 0, n, &layer.ffn_gate, &gate);
            ops::matmul(ctx, &mut enc, &xn, 0, n, &layer.ffn_up, &up);
            ops::swiglu(ctx, &mut enc, &gate, &up, n * c.n_ff);
            ops::matmul(ctx, &mut enc, &gate, 0, n, &layer.ffn_down, &proj);
            ops::add(ctx, &mut enc, &x, &proj, n * d);
        }
        ops::rmsnorm(ctx, &mut enc, &x, &w.output_norm, &xn, n, d, c.rms_eps);
        // Logits for the contiguous range covering the requested positions.
        let positions: Vec<usize> = match &opts.logits_for {
            LogitsFor::Last => vec![n - 1],
            LogitsFor::All => (0..n).collect(),
            LogitsFor::Positions(p) => p.iter().copied().filter(|&p| p < n).collect(),
        };
        let (lo, hi) = (positions.iter().copied().min().unwrap_or(0), positions.iter().copied().max().unwrap_or(0));
        let span = if positions.is_empty() { 0 } else { hi - lo + 1 };
        let out = w.output();
        let logits_buf = ctx.scratch("logits", span * out.rows); // (span, vocab)
        if span > 0 {
            ops::matmul(ctx, &mut enc, &xn, lo, span, out, &logits_buf);
        }
        let mut reads: Vec<(&wgpu::Buffer, usize, usize)> = vec![(&logits_buf, 0, span * out.rows), (&xn, (n - 1) * d, d)];
        if opts.capture_attention {
            for i in 0..c.n_layer {
                reads.push((&qs[i], 0, n * q_dim));
                reads.push((&ks[i], 0, n * kv_dim));
                reads.push((&lses[i], 0, c.n_head * n));
            }
        }
        let staged = ctx.stage_ranges(&mut enc, &reads);
        let record_ms = clock.ms();
        ctx.queue.submit([enc.finish()]);
        let mut data = ctx.read_staged_async(staged).await?.into_iter();
        let gpu_ms = clock.ms() - record_ms;

        let span_logits = data.next().expect("logits staged");
        let last_hidden = data.next().expect("hidden staged");
        let mut logits = Array2::<f32>::zeros((positions.len(), out.rows)); // (positions, vocab)
        for (i, &p) in positions.iter().enumerate() {
            let row = &span_logits[(p - lo) * out.rows..(p - lo + 1) * out.rows];
            logits.row_mut(i).as_slice_mut().expect("contiguous").copy_from_slice(row);
        }
        let trace = opts.capture_attention.then(|| {
            let mut t = AttentionTrace::new(c, n);
            for _ in 0..c.n_layer {
                let q = data.next().expect("q staged");
                let k = data.next().expect("k staged");
                let lse = data.next().expect("lse staged");
                t.layers.push(LayerTrace { q, k, lse });
            }
            t
        });
        if opts.capture_attention {
            let layers = qs.into_iter().zip(ks).zip(lses).map(|((q, k), l)| (q, k, l)).collect();
            *self.last_trace.lock().expect("trace lock") = Some(GpuTrace { shape, layers });
        }
        let total_ms = clock.ms();
        Ok(ForwardOutput {
            backend: "gpu".to_string(),
            logit_positions: positions,
            logits,
            final_hidden_norm_last: last_hidden.iter().map(|v| v * v).sum::<f32>().sqrt(),
            trace,
            // GPU work is asynchronous: "layers" is submit-to-readback time, "embed" the
            // weight upload (zero once resident) plus recording.
            timings: ForwardTimings { embed_ms: record_ms, layers_ms: gpu_ms, logits_ms: total_ms - record_ms - gpu_ms, total_ms },
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Backend for GpuBackend {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn describe(&self) -> String {
        format!("GPU, {}", self.ctx.describe())
    }

    fn forward(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError> {
        pollster::block_on(self.forward_async(model, ids, opts))
    }
}
