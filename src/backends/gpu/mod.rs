//! The GPU backend: the architecture's forward pass (`Model::record`) recorded op by op into
//! one command encoder, kernels in WGSL (`shaders/`) with the tiled flash-attention kernel;
//! only what was asked (logits, and Q/K/LSE for the attention trace) is read back.

pub mod adapter;
pub mod context;
#[cfg(any(test, feature = "test-support"))]
pub mod maps;
pub mod ops;
pub mod profile;
pub mod weights;

use std::sync::Mutex;

#[cfg(not(target_arch = "wasm32"))]
use super::Backend;
use super::{validate_input, validate_step, EngineError, ForwardOptions, ForwardOutput, ForwardTimings, StepOutput};
use crate::model::KvCache;
use crate::model::arch::{Act, AttnShape, Norm, Ops, RopeStyle, Vector};
use crate::model::capture::{AttentionTrace, LayerTrace};
use crate::model::quant::QTensor;
use crate::model::Model;
use crate::util::Clock;
use context::{GpuContext, GpuError};
use ndarray::Array2;
use weights::{fingerprint, GpuWeights};

/// Positions whose logits are computed together when only their argmax is kept
/// ([`Ops::matmul_argmax`]): (64, vocab) floats of scratch, 12.6 MB for SmolLM2, 67 MB for Gemma 3.
pub const LOGIT_CHUNK: usize = 64;

impl From<GpuError> for EngineError {
    fn from(e: GpuError) -> Self {
        EngineError::Unavailable("gpu".into(), e.to_string())
    }
}

pub struct GpuBackend {
    pub ctx: GpuContext,
    weights: Mutex<Option<GpuWeights>>,
    /// The last captured forward pass, still on the device, for the GPU-side map kernels the
    /// tests check ([`maps`]); the product reads its captures back and frees the buffers.
    #[cfg(any(test, feature = "test-support"))]
    last_trace: Mutex<Option<maps::GpuTrace>>,
}

impl GpuBackend {
    /// Opens the GPU (native: blocking; in the browser use `GpuContext::new().await`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self, GpuError> {
        Ok(Self::with_context(GpuContext::new_blocking()?))
    }

    pub fn with_context(ctx: GpuContext) -> Self {
        GpuBackend {
            ctx,
            weights: Mutex::new(None),
            #[cfg(any(test, feature = "test-support"))]
            last_trace: Mutex::new(None),
        }
    }

    /// Uploads `model`'s weights unless they are already resident.
    pub fn prepare(&self, model: &Model) {
        drop(self.resident(model));
    }

    /// The weights lock, holding `model`'s weights (uploaded if another model's were resident):
    /// a pass records under this one guard, so a second thread preparing another model cannot
    /// swap the weights between the upload and the recording.
    fn resident(&self, model: &Model) -> std::sync::MutexGuard<'_, Option<GpuWeights>> {
        let mut w = self.weights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if w.as_ref().map(|w| w.fingerprint != fingerprint(model)).unwrap_or(true) {
            *w = Some(GpuWeights::upload(&self.ctx, model));
        }
        w
    }

    /// The forward pass; awaits only the final readback (no blocking poll in the browser).
    pub async fn forward_async(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError> {
        validate_input(model, ids, opts)?;
        check_shapes(model)?;
        Ok(self.run(model, ids, opts).await?)
    }

    /// An empty KV cache for `capacity` tokens, in GPU buffers.
    pub fn new_cache(&self, model: &Model, capacity: usize) -> KvCache<GpuBuf> {
        let c = &model.config;
        KvCache { layers: (0..c.n_layer).map(|_| (GpuBuf { buf: self.ctx.scratch("k cache", capacity * c.kv_dim()), len: capacity * c.kv_dim() }, GpuBuf { buf: self.ctx.scratch("v cache", capacity * c.kv_dim()), len: capacity * c.kv_dim() })).collect(), len: 0, capacity }
    }

    /// Runs `ids` after what `cache` holds and appends their keys and values to it, all in one
    /// command buffer; reads back only the logits asked for and, when captured, this pass's
    /// queries and log-sum-exps.
    pub async fn step_async(&self, model: &Model, ids: &[u32], cache: &mut KvCache<GpuBuf>, opts: &ForwardOptions) -> Result<StepOutput, EngineError> {
        validate_step(model, ids, cache.len, cache.capacity)?;
        check_shapes(model)?;
        self.ctx.check_lost()?;
        let ctx = &self.ctx;
        let (rec, staged) = {
            let guard = self.resident(model);
            let w = guard.as_ref().expect("made resident");
            let mut o = GpuOps { ctx, w, enc: ctx.encoder("step"), tables: Vec::new() };
            let rec = model.step(&mut o, ids, cache, opts);
            let mut enc = o.enc;
            let mut reads: Vec<(&wgpu::Buffer, usize, usize)> = vec![(&rec.logits.buf, 0, rec.logits.len)];
            for l in &rec.layers {
                reads.push((&l.q.buf, 0, l.q.len));
                reads.push((&l.lse.buf, 0, l.lse.len));
            }
            let staged = ctx.stage_ranges(&mut enc, &reads);
            ctx.queue.submit([enc.finish()]);
            (rec, staged)
        };
        let mut data = ctx.read_staged_async(staged).await.map_err(EngineError::from)?.into_iter();
        let logits_flat = data.next().expect("logits staged");
        let vocab = if rec.positions.is_empty() { 0 } else { logits_flat.len() / rec.positions.len() };
        let mut rows = Vec::new();
        while let (Some(q), Some(lse)) = (data.next(), data.next()) {
            rows.push((q, lse));
        }
        Ok(StepOutput { logits: Array2::from_shape_vec((rec.positions.len(), vocab), logits_flat).expect("logits are (positions, vocab)"), logit_positions: rec.positions, rows })
    }

    /// Every layer's cached keys and values of rows `from .. cache.len`, read back in one
    /// submission (a decoding step reads only its new rows).
    pub async fn read_cache_async(&self, cache: &KvCache<GpuBuf>, kv_dim: usize, from: usize) -> Result<Vec<(Vec<f32>, Vec<f32>)>, EngineError> {
        let (at, len) = (from * kv_dim, cache.len.saturating_sub(from) * kv_dim);
        let ranges: Vec<(&wgpu::Buffer, usize, usize)> = cache.layers.iter().flat_map(|(k, v)| [(&k.buf, at, len), (&v.buf, at, len)]).collect();
        let mut enc = self.ctx.encoder("read cache");
        let staged = self.ctx.stage_ranges(&mut enc, &ranges);
        self.ctx.queue.submit([enc.finish()]);
        let mut out = self.ctx.read_staged_async(staged).await.map_err(EngineError::from)?.into_iter();
        Ok((0..cache.layers.len()).map(|_| (out.next().expect("k"), out.next().expect("v"))).collect())
    }

    /// Layer `layer`'s whole cache ([`GpuBackend::read_cache_async`], blocking).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_cache(&self, cache: &KvCache<GpuBuf>, layer: usize, kv_dim: usize) -> Result<(Vec<f32>, Vec<f32>), EngineError> {
        Ok(pollster::block_on(self.read_cache_async(cache, kv_dim, 0))?.swap_remove(layer))
    }

    async fn run(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, GpuError> {
        let clock = Clock::start();
        self.ctx.check_lost()?;
        let ctx = &self.ctx;
        let c = &model.config;
        let n = ids.len();
        let d = c.n_embd;

        // Record the architecture's pass into one encoder, stage what is read back, submit;
        // the weights lock is released before awaiting the readback.
        let (rec, staged) = {
            let guard = self.resident(model);
            let w = guard.as_ref().expect("made resident");
            let mut o = GpuOps { ctx, w, enc: ctx.encoder("forward"), tables: Vec::new() };
            let rec = model.record(&mut o, ids, opts);
            let mut enc = o.enc;
            let mut reads: Vec<(&wgpu::Buffer, usize, usize)> = vec![(&rec.logits.buf, 0, rec.logits.len), (&rec.hidden.buf, (n - 1) * d, d)];
            if let Some(a) = &rec.argmax {
                reads.push((&a.buf, 0, a.len));
            }
            for h in rec.lens.iter().chain(&rec.residual) {
                reads.push((&h.buf, 0, h.len));
            }
            for l in &rec.layers {
                reads.push((&l.q.buf, 0, l.q.len));
                reads.push((&l.k.buf, 0, l.k.len));
                reads.push((&l.v.buf, 0, l.v.len));
                reads.push((&l.lse.buf, 0, l.lse.len));
            }
            let staged = ctx.stage_ranges(&mut enc, &reads);
            ctx.queue.submit([enc.finish()]);
            (rec, staged)
        };
        let record_ms = clock.ms();
        let mut data = ctx.read_staged_async(staged).await?.into_iter();
        let gpu_ms = clock.ms() - record_ms;

        let logits_flat = data.next().expect("logits staged");
        let last_hidden = data.next().expect("hidden staged");
        let vocab = if rec.positions.is_empty() { 0 } else { logits_flat.len() / rec.positions.len() };
        let logits = Array2::from_shape_vec((rec.positions.len(), vocab), logits_flat).expect("logits are (positions, vocab)");
        let argmax = rec.argmax.as_ref().map(|_| data.next().expect("argmax staged").iter().map(|&v| v as u32).collect());
        let lens = rec.lens.iter().map(|_| data.next().expect("lens staged")).collect();
        let residual = rec.residual.iter().map(|_| data.next().expect("residual staged")).collect();
        let trace = opts.capture_attention.then(|| {
            let mut t = AttentionTrace::new(c, n);
            for _ in 0..c.n_layer {
                let q = data.next().expect("q staged");
                let k = data.next().expect("k staged");
                let v = data.next().expect("v staged");
                let lse = data.next().expect("lse staged");
                t.layers.push(LayerTrace { q, k, v, lse });
            }
            t
        });
        #[cfg(any(test, feature = "test-support"))]
        if opts.capture_attention {
            let shapes = c.layer_window.iter().map(|&window| AttnShape { n, past: 0, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: c.head_dim, window, ..Default::default() }).collect();
            let layers = rec.layers.into_iter().map(|l| (l.q.buf, l.k.buf, l.lse.buf)).collect();
            *self.last_trace.lock().expect("trace lock") = Some(maps::GpuTrace { shapes, layers });
        }
        let total_ms = clock.ms();
        Ok(ForwardOutput {
            backend: "gpu".to_string(),
            logit_positions: rec.positions,
            logits,
            final_hidden_norm_last: last_hidden.iter().map(|v| v * v).sum::<f32>().sqrt(),
            trace,
            argmax,
            lens,
            residual,
            // GPU work is asynchronous: "layers" is submit-to-readback time, "embed" the
            // weight upload (zero once resident) plus recording.
            timings: ForwardTimings { embed_ms: record_ms, layers_ms: gpu_ms, logits_ms: total_ms - record_ms - gpu_ms, total_ms },
        })
    }
}

/// What the kernels can run: head sizes divisible by 4 up to 256, at most a workgroup of
/// query heads per KV head.
fn check_shapes(model: &Model) -> Result<(), EngineError> {
    let c = &model.config;
    if c.head_dim % 4 != 0 || c.head_dim > 256 || c.group_size() > ops::FLASH_WG as usize {
        return Err(EngineError::Unavailable("gpu".into(), format!("the GPU kernels need a head size divisible by 4 and at most 256, and at most {} query heads per KV head (this model: {}, {})", ops::FLASH_WG, c.head_dim, c.group_size())));
    }
    Ok(())
}

/// A GPU buffer of `len` f32 values.
pub struct GpuBuf {
    pub buf: wgpu::Buffer,
    pub len: usize,
}

/// [`Ops`] recorded into one command encoder; weights are the resident copies of the host
/// tensors the pass names.
struct GpuOps<'a> {
    ctx: &'a GpuContext,
    w: &'a GpuWeights,
    enc: wgpu::CommandEncoder,
    /// RoPE cos/sin tables made in this pass: ((start, n, rope_dim, base bits), (n, rope_dim/2, 2)).
    tables: Vec<((usize, usize, usize, u32), wgpu::Buffer)>,
}

/// A norm's resident weights.
fn norm_weights<'w>(w: &'w GpuWeights, norm: &Norm) -> ops::NormWeights<'w> {
    ops::NormWeights { kind: norm.kind, w: w.vector(&norm.w), bias: norm.b.as_ref().map(|b| w.vector(b)), eps: norm.eps }
}

impl Ops for GpuOps<'_> {
    type Buf = GpuBuf;

    fn buffer(&mut self, label: &'static str, len: usize) -> GpuBuf {
        GpuBuf { buf: self.ctx.scratch(label, len), len }
    }

    fn embed(&mut self, ids: &[u32], table: &QTensor, scale: f32, out: &mut GpuBuf) {
        let ids_buf = self.ctx.upload("ids", ids); // (n) u32
        ops::embed(self.ctx, &mut self.enc, &ids_buf, ids.len(), self.w.matrix(table), scale, &out.buf);
    }

    fn matmul(&mut self, x: &GpuBuf, n: usize, w: &QTensor, out: &mut GpuBuf) {
        ops::matmul(self.ctx, &mut self.enc, &x.buf, 0, n, self.w.matrix(w), &out.buf);
    }

    fn add_bias(&mut self, x: &mut GpuBuf, b: &Vector) {
        ops::add_bias(self.ctx, &mut self.enc, &x.buf, self.w.vector(b), x.len, b.len());
    }

    fn add(&mut self, x: &mut GpuBuf, y: &GpuBuf) {
        ops::add(self.ctx, &mut self.enc, &x.buf, &y.buf, x.len);
    }

    fn norm(&mut self, norm: &Norm, x: &GpuBuf, out: &mut GpuBuf) {
        let nw = norm_weights(self.w, norm);
        ops::norm(self.ctx, &mut self.enc, &nw, &x.buf, &out.buf, x.len / norm.width(), norm.width());
    }

    fn norm_in_place(&mut self, norm: &Norm, x: &mut GpuBuf) {
        let nw = norm_weights(self.w, norm);
        ops::norm_in_place(self.ctx, &mut self.enc, &nw, &x.buf, x.len / norm.width(), norm.width());
    }

    fn add_norm(&mut self, x: &mut GpuBuf, y: &GpuBuf, norm: &Norm, out: &mut GpuBuf) {
        let nw = norm_weights(self.w, norm);
        ops::add_norm(self.ctx, &mut self.enc, &x.buf, &y.buf, &nw, &out.buf, x.len / norm.width(), norm.width());
    }

    fn rope(&mut self, x: &mut GpuBuf, n: usize, heads: usize, head_dim: usize, rope_dim: usize, base: f32, style: RopeStyle, start: usize) {
        let key = (start, n, rope_dim, base.to_bits());
        if !self.tables.iter().any(|(k, _)| *k == key) {
            let t = self.ctx.upload("rope table", &ops::rope_table(start, n, rope_dim, base));
            self.tables.push((key, t));
        }
        let table = &self.tables.iter().find(|(k, _)| *k == key).expect("made above").1;
        ops::rope(self.ctx, &mut self.enc, &x.buf, table, n, heads, head_dim, rope_dim, style);
    }

    fn attention(&mut self, s: AttnShape, q: &GpuBuf, k: &GpuBuf, v: &GpuBuf, out: &mut GpuBuf, lse: &mut GpuBuf) {
        ops::attention(self.ctx, &mut self.enc, s, &q.buf, &k.buf, &v.buf, &out.buf, &lse.buf);
    }

    fn gated(&mut self, act: Act, gate: &mut GpuBuf, up: &GpuBuf) {
        match act {
            Act::Silu => ops::swiglu(self.ctx, &mut self.enc, &gate.buf, &up.buf, gate.len),
            Act::GeluTanh => ops::geglu(self.ctx, &mut self.enc, &gate.buf, &up.buf, gate.len),
        }
    }

    fn activate(&mut self, act: Act, x: &mut GpuBuf) {
        ops::activate(self.ctx, &mut self.enc, act, &x.buf, x.len);
    }

    fn copy_rows(&mut self, src: &GpuBuf, d: usize, n: usize, dst: &mut GpuBuf, at: usize) {
        self.enc.copy_buffer_to_buffer(&src.buf, 0, &dst.buf, (at * d * 4) as u64, (n * d * 4) as u64);
    }

    /// The logits of [`LOGIT_CHUNK`] positions at a time, each chunk reduced to its argmax.
    fn matmul_argmax(&mut self, x: &GpuBuf, n: usize, w: &QTensor, out: &mut GpuBuf) {
        let chunk = LOGIT_CHUNK.min(n);
        let part = self.buffer("argmax logits", chunk * w.rows); // (chunk, vocab)
        for p0 in (0..n).step_by(chunk) {
            let len = chunk.min(n - p0);
            ops::matmul(self.ctx, &mut self.enc, &x.buf, p0, len, self.w.matrix(w), &part.buf);
            ops::argmax_rows(self.ctx, &mut self.enc, &part.buf, len, w.rows, &out.buf, p0);
        }
    }

    fn zero_heads(&mut self, x: &mut GpuBuf, n: usize, n_head: usize, head_dim: usize, heads: &[usize]) {
        ops::zero_heads(self.ctx, &mut self.enc, &x.buf, n, n_head, head_dim, heads);
    }

    fn gather_rows(&mut self, x: &GpuBuf, d: usize, rows: &[usize], out: &mut GpuBuf) {
        // One copy per run of consecutive rows.
        let mut i = 0;
        while i < rows.len() {
            let mut j = i + 1;
            while j < rows.len() && rows[j] == rows[j - 1] + 1 {
                j += 1;
            }
            self.enc.copy_buffer_to_buffer(&x.buf, (rows[i] * d * 4) as u64, &out.buf, (i * d * 4) as u64, ((j - i) * d * 4) as u64);
            i = j;
        }
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
