//! The CPU backend: executes the architecture's forward pass ([`crate::model::Model::record`])
//! op by op, exact f32 over quantized weights.

pub mod ops;
pub mod panel;
pub mod parallel;

use ndarray::Array2;

use super::{validate_input, validate_step, Backend, EngineError, ForwardOptions, ForwardOutput, ForwardTimings, StepOutput};
use crate::model::KvCache;
use crate::model::arch::{Act, AttnShape, Norm, NormKind, Ops, RopeStyle, Vector};
use crate::model::capture::{AttentionTrace, LayerTrace};
use crate::model::quant::QTensor;
use crate::model::Model;
use crate::util::Clock;

#[derive(Debug, Default, Clone)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }

    /// An empty KV cache for `capacity` tokens.
    pub fn new_cache(&self, model: &Model, capacity: usize) -> KvCache<Vec<f32>> {
        model.new_cache(&mut CpuOps::new(), capacity)
    }

    /// Runs `ids` after what `cache` holds and appends them to it (prefill, then one token per
    /// decoding step).
    pub fn step(&self, model: &Model, ids: &[u32], cache: &mut KvCache<Vec<f32>>, opts: &ForwardOptions) -> Result<StepOutput, EngineError> {
        validate_step(model, ids, cache.len, cache.capacity)?;
        let rec = parallel::on_pool(|| model.step(&mut CpuOps::new(), ids, cache, opts));
        let vocab = if rec.positions.is_empty() { 0 } else { rec.logits.len() / rec.positions.len() };
        Ok(StepOutput {
            logits: Array2::from_shape_vec((rec.positions.len(), vocab), rec.logits).expect("logits are (positions, vocab)"),
            logit_positions: rec.positions,
            rows: rec.layers.into_iter().map(|l| (l.q, l.lse)).collect(),
        })
    }
}

/// [`Ops`] on host memory: every call runs at once. Notes when the embedding and the
/// logits step ran, for the stage timings.
pub struct CpuOps {
    clock: Clock,
    embed_ms: f64,
    logits_at_ms: Option<f64>,
}

impl CpuOps {
    pub fn new() -> Self {
        CpuOps { clock: Clock::start(), embed_ms: 0.0, logits_at_ms: None }
    }
}

impl Default for CpuOps {
    fn default() -> Self {
        Self::new()
    }
}

impl Ops for CpuOps {
    type Buf = Vec<f32>;

    fn buffer(&mut self, _label: &'static str, len: usize) -> Vec<f32> {
        vec![0.0; len]
    }

    fn embed(&mut self, ids: &[u32], table: &QTensor, scale: f32, out: &mut Vec<f32>) {
        let d = table.cols;
        for (row, &id) in out.chunks_exact_mut(d).zip(ids) {
            table.dequantize_row(id as usize, row);
            if scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        self.embed_ms = self.clock.ms();
    }

    fn matmul(&mut self, x: &Vec<f32>, n: usize, w: &QTensor, out: &mut Vec<f32>) {
        ops::matmul_qt(&x[..n * w.cols], n, w, &mut out[..n * w.rows]);
    }

    fn add_bias(&mut self, x: &mut Vec<f32>, b: &Vector) {
        ops::add_bias(x, b);
    }

    fn add(&mut self, x: &mut Vec<f32>, y: &Vec<f32>) {
        ops::add_assign(x, y);
    }

    fn norm(&mut self, norm: &Norm, x: &Vec<f32>, out: &mut Vec<f32>) {
        ops::norm(norm.kind, x, &norm.w, norm.b.as_deref(), norm.eps, out);
    }

    fn norm_in_place(&mut self, norm: &Norm, x: &mut Vec<f32>) {
        match (norm.kind, &norm.b) {
            (NormKind::Rms, None) => ops::rms_norm_in_place(x, &norm.w, norm.eps),
            _ => {
                let copy = x.clone();
                ops::norm(norm.kind, &copy, &norm.w, norm.b.as_deref(), norm.eps, x);
            }
        }
    }

    fn add_norm(&mut self, x: &mut Vec<f32>, y: &Vec<f32>, norm: &Norm, out: &mut Vec<f32>) {
        ops::add_assign(x, y);
        ops::norm(norm.kind, x, &norm.w, norm.b.as_deref(), norm.eps, out);
    }

    fn rope(&mut self, x: &mut Vec<f32>, n: usize, heads: usize, head_dim: usize, rope_dim: usize, base: f32, style: RopeStyle, start: usize) {
        ops::rope(&mut x[..n * heads * head_dim], heads, head_dim, rope_dim, base, start, style);
    }

    fn attention(&mut self, s: AttnShape, q: &Vec<f32>, k: &Vec<f32>, v: &Vec<f32>, out: &mut Vec<f32>, lse: &mut Vec<f32>) {
        ops::causal_attention(s, q, k, v, out, lse);
    }

    fn gated(&mut self, act: Act, gate: &mut Vec<f32>, up: &Vec<f32>) {
        match act {
            Act::Silu => ops::swiglu(gate, up),
            Act::GeluTanh => ops::geglu_tanh(gate, up),
        }
    }

    fn activate(&mut self, act: Act, x: &mut Vec<f32>) {
        ops::activate(act, x);
    }

    fn copy_rows(&mut self, src: &Vec<f32>, d: usize, n: usize, dst: &mut Vec<f32>, at: usize) {
        dst[at * d..(at + n) * d].copy_from_slice(&src[..n * d]);
    }

    fn matmul_argmax(&mut self, x: &Vec<f32>, n: usize, w: &QTensor, out: &mut Vec<f32>) {
        self.logits_at_ms.get_or_insert(self.clock.ms());
        ops::matmul_argmax(&x[..n * w.cols], n, w, &mut out[..n]);
    }

    fn zero_heads(&mut self, x: &mut Vec<f32>, n: usize, n_head: usize, head_dim: usize, heads: &[usize]) {
        for row in x[..n * n_head * head_dim].chunks_exact_mut(n_head * head_dim) {
            for &h in heads {
                row[h * head_dim..(h + 1) * head_dim].fill(0.0);
            }
        }
    }

    fn gather_rows(&mut self, x: &Vec<f32>, d: usize, rows: &[usize], out: &mut Vec<f32>) {
        self.logits_at_ms.get_or_insert(self.clock.ms());
        for (o, &r) in out.chunks_exact_mut(d).zip(rows) {
            o.copy_from_slice(&x[r * d..(r + 1) * d]);
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn describe(&self) -> String {
        // The browser has two builds of the worker (see scripts/relaxed-worker.sh).
        let simd = if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
            ", wasm SIMD128 + relaxed FMA"
        } else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            ", wasm SIMD128"
        } else {
            ""
        };
        format!("CPU, f32, {} thread(s){simd}", parallel::threads())
    }

    fn forward(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError> {
        validate_input(model, ids, opts)?;
        let c = &model.config;
        let n = ids.len();
        let mut o = CpuOps::new();
        let rec = model.record(&mut o, ids, opts);
        let d = c.n_embd;
        let final_hidden_norm_last = rec.hidden[(n - 1) * d..n * d].iter().map(|v| v * v).sum::<f32>().sqrt();
        let vocab = if rec.positions.is_empty() { 0 } else { rec.logits.len() / rec.positions.len() };
        let logits = Array2::from_shape_vec((rec.positions.len(), vocab), rec.logits).expect("logits are (positions, vocab)");
        let trace = opts.capture_attention.then(|| {
            let mut t = AttentionTrace::new(c, n);
            t.layers = rec.layers.into_iter().map(|l| LayerTrace { q: l.q, k: l.k, v: l.v, lse: l.lse }).collect();
            t
        });
        let total_ms = o.clock.ms();
        let logits_at = o.logits_at_ms.unwrap_or(total_ms);
        Ok(ForwardOutput {
            backend: self.name().to_string(),
            logit_positions: rec.positions,
            logits,
            final_hidden_norm_last,
            trace,
            argmax: rec.argmax.map(|a| a.iter().map(|&v| v as u32).collect()),
            lens: rec.lens,
            residual: rec.residual,
            timings: ForwardTimings { embed_ms: o.embed_ms, layers_ms: logits_at - o.embed_ms, logits_ms: total_ms - logits_at, total_ms },
        })
    }
}
