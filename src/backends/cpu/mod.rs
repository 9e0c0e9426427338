//! The CPU backend: an exact f32 Llama forward pass over quantized weights.

pub mod ops;
pub mod parallel;

use ndarray::Array2;

use super::{validate_input, Backend, EngineError, ForwardOptions, ForwardOutput, ForwardTimings, LogitsFor};
use crate::analysis::trace::{AttentionTrace, LayerTrace};
use crate::model::Model;
use crate::util::Clock;
use ops::{add_assign, causal_attention, matmul_qt, rms_norm, rope, swiglu};

#[derive(Debug, Default, Clone)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn describe(&self) -> String {
        format!("CPU, f32, {} thread(s)", parallel::threads())
    }

    fn forward(&self, model: &Model, ids: &[u32], opts: &ForwardOptions) -> Result<ForwardOutput, EngineError> {
        validate_input(model, ids, opts)?;
        let c = &model.config;
        let w = &model.weights;
        let n = ids.len();
        let (d, q_dim, kv_dim) = (c.n_embd, c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
        let clock = Clock::start();

        // (n, d): the residual stream.
        let mut x = Array2::<f32>::zeros((n, d));
        for (row, &id) in x.rows_mut().into_iter().zip(ids) {
            let row = row.into_slice().expect("rows of a standard-layout array are contiguous");
            w.token_embd.dequantize_row(id as usize, row);
        }
        let embed_ms = clock.ms();

        let mut xn = Array2::<f32>::zeros((n, d)); // (n, d) normalised stream
        let mut attn = Array2::<f32>::zeros((n, q_dim)); // (n, n_head * head_dim)
        let mut proj = Array2::<f32>::zeros((n, d)); // (n, d) block output
        let mut gate = Array2::<f32>::zeros((n, c.n_ff)); // (n, n_ff)
        let mut up = Array2::<f32>::zeros((n, c.n_ff)); // (n, n_ff)
        let mut trace = opts.capture_attention.then(|| AttentionTrace::new(c, n));

        for layer in &w.layers {
            rms_norm(x.as_slice().unwrap(), &layer.attn_norm, c.rms_eps, xn.as_slice_mut().unwrap());
            let mut q = Array2::<f32>::zeros((n, q_dim)); // (n, n_head * head_dim)
            let mut k = Array2::<f32>::zeros((n, kv_dim)); // (n, n_kv * head_dim)
            let mut v = Array2::<f32>::zeros((n, kv_dim)); // (n, n_kv * head_dim)
            matmul_qt(xn.as_slice().unwrap(), n, &layer.attn_q, q.as_slice_mut().unwrap());
            matmul_qt(xn.as_slice().unwrap(), n, &layer.attn_k, k.as_slice_mut().unwrap());
            matmul_qt(xn.as_slice().unwrap(), n, &layer.attn_v, v.as_slice_mut().unwrap());
            rope(q.as_slice_mut().unwrap(), c.n_head, c.head_dim, c.rope_dim, c.rope_base, 0);
            rope(k.as_slice_mut().unwrap(), c.n_head_kv, c.head_dim, c.rope_dim, c.rope_base, 0);
            let mut lse = vec![0.0f32; c.n_head * n]; // (n_head, n)
            causal_attention(q.as_slice().unwrap(), k.as_slice().unwrap(), v.as_slice().unwrap(), n, c.n_head, c.n_head_kv, c.head_dim, attn.as_slice_mut().unwrap(), &mut lse);
            matmul_qt(attn.as_slice().unwrap(), n, &layer.attn_output, proj.as_slice_mut().unwrap());
            add_assign(x.as_slice_mut().unwrap(), proj.as_slice().unwrap());

            rms_norm(x.as_slice().unwrap(), &layer.ffn_norm, c.rms_eps, xn.as_slice_mut().unwrap());
            matmul_qt(xn.as_slice().unwrap(), n, &layer.ffn_gate, gate.as_slice_mut().unwrap());
            matmul_qt(xn.as_slice().unwrap(), n, &layer.ffn_up, up.as_slice_mut().unwrap());
            swiglu(gate.as_slice_mut().unwrap(), up.as_slice().unwrap());
            matmul_qt(gate.as_slice().unwrap(), n, &layer.ffn_down, proj.as_slice_mut().unwrap());
            add_assign(x.as_slice_mut().unwrap(), proj.as_slice().unwrap());

            if let Some(t) = trace.as_mut() {
                t.layers.push(LayerTrace { q: q.into_raw_vec_and_offset().0, k: k.into_raw_vec_and_offset().0, lse });
            }
        }
        let layers_ms = clock.ms() - embed_ms;

        rms_norm(x.as_slice().unwrap(), &w.output_norm, c.rms_eps, xn.as_slice_mut().unwrap());
        let final_hidden_norm_last = xn.row(n - 1).iter().map(|v| v * v).sum::<f32>().sqrt();
        let positions: Vec<usize> = match &opts.logits_for {
            LogitsFor::Last => vec![n - 1],
            LogitsFor::All => (0..n).collect(),
            LogitsFor::Positions(p) => p.iter().copied().filter(|&p| p < n).collect(),
        };
        let mut hidden = Array2::<f32>::zeros((positions.len(), d)); // (positions, d)
        for (i, &p) in positions.iter().enumerate() {
            hidden.row_mut(i).assign(&xn.row(p));
        }
        let output = w.output();
        let mut logits = Array2::<f32>::zeros((positions.len(), output.rows)); // (positions, vocab)
        if !positions.is_empty() {
            matmul_qt(hidden.as_slice().unwrap(), positions.len(), output, logits.as_slice_mut().unwrap());
        }
        let total_ms = clock.ms();
        Ok(ForwardOutput {
            backend: self.name().to_string(),
            logit_positions: positions,
            logits,
            final_hidden_norm_last,
            trace,
            timings: ForwardTimings { embed_ms, layers_ms, logits_ms: total_ms - embed_ms - layers_ms, total_ms },
        })
    }
}
