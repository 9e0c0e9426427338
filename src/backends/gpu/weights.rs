//! Weights on the GPU, still quantized, repacked into u32-aligned arrays for WGSL.
//!
//! GGUF blocks interleave an f16 scale (and min) with the quants, and their 18/20/34-byte
//! sizes break 4-byte alignment. WGSL reads `array<u32>` and `array<f32>`, so each matrix is
//! split into three arrays (see `shaders/dequant.wgsl`): packed quants, f32 scales, f32 mins.
//! A matrix larger than `max_storage_buffer_binding_size` is split by rows into parts.

use crate::model::gguf::GgmlType;
use crate::model::quant::{f16_to_f32, QTensor};
use crate::model::Model;

use super::context::GpuContext;

pub const FORMAT_Q4: u32 = 0;
pub const FORMAT_Q8: u32 = 1;
pub const FORMAT_F32: u32 = 2;

/// Rows `row0 .. row0 + rows` of a matrix.
pub struct MatrixPart {
    pub row0: usize,
    pub rows: usize,
    pub quants: wgpu::Buffer, // Q4: (rows, cols/32, 4) u32; Q8: (rows, cols/32, 8) u32; F32: (rows, cols) f32 bits
    pub scales: wgpu::Buffer, // (rows, cols/32) f32 (a dummy word for F32)
    pub mins: wgpu::Buffer,   // (rows, cols/32) f32 (Q4 only; a dummy word otherwise)
}

pub struct GpuMatrix {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub format: u32,
    pub parts: Vec<MatrixPart>,
}

/// Repacked arrays of rows `r0 .. r0 + n` of `t`: (format, quants, scales, mins).
pub fn repack_rows(t: &QTensor, r0: usize, n: usize) -> (u32, Vec<u32>, Vec<f32>, Vec<f32>) {
    let rb = t.row_bytes();
    let bytes = &t.data()[r0 * rb..(r0 + n) * rb];
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let f16 = |b: &[u8]| f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    match t.ty {
        GgmlType::Q4_1 | GgmlType::Q4_0 => {
            let bsize = if t.ty == GgmlType::Q4_1 { 20 } else { 18 };
            let nb = bytes.len() / bsize;
            let (mut q, mut s, mut m) = (Vec::with_capacity(nb * 4), Vec::with_capacity(nb), Vec::with_capacity(nb));
            for b in bytes.chunks_exact(bsize) {
                let d = f16(&b[0..2]);
                s.push(d);
                let (min, quants) = if t.ty == GgmlType::Q4_1 { (f16(&b[2..4]), &b[4..20]) } else { (-8.0 * d, &b[2..18]) };
                m.push(min);
                q.extend(quants.chunks_exact(4).map(word));
            }
            (FORMAT_Q4, q, s, m)
        }
        GgmlType::Q8_0 => {
            let nb = bytes.len() / 34;
            let (mut q, mut s) = (Vec::with_capacity(nb * 8), Vec::with_capacity(nb));
            for b in bytes.chunks_exact(34) {
                s.push(f16(&b[0..2]));
                q.extend(b[2..34].chunks_exact(4).map(word));
            }
            (FORMAT_Q8, q, s, vec![0.0])
        }
        _ => {
            let mut f = vec![0f32; n * t.cols];
            t.dequantize_rows(r0, n, &mut f);
            (FORMAT_F32, f.iter().map(|v| v.to_bits()).collect(), vec![0.0], vec![0.0])
        }
    }
}

impl GpuMatrix {
    pub fn upload(ctx: &GpuContext, t: &QTensor) -> GpuMatrix {
        Self::upload_with_limit(ctx, t, ctx.limits.max_storage_buffer_binding_size as usize)
    }

    /// Uploads with parts of at most `max_binding_bytes` (tests force splits with this).
    pub fn upload_with_limit(ctx: &GpuContext, t: &QTensor, max_binding_bytes: usize) -> GpuMatrix {
        // Bytes per row of the largest array (quants).
        let row_bytes = match t.ty {
            GgmlType::Q4_1 | GgmlType::Q4_0 => t.cols / 2,
            GgmlType::Q8_0 => t.cols,
            _ => t.cols * 4,
        }
        .max(4);
        let max_rows = (max_binding_bytes / row_bytes).max(1);
        let mut parts = Vec::new();
        let mut format = FORMAT_F32;
        let mut r0 = 0;
        while r0 < t.rows {
            let n = max_rows.min(t.rows - r0);
            let (f, q, s, m) = repack_rows(t, r0, n);
            format = f;
            parts.push(MatrixPart {
                row0: r0,
                rows: n,
                quants: ctx.upload(&format!("{} quants [{r0}..]", t.name), &q),
                scales: ctx.upload(&format!("{} scales [{r0}..]", t.name), &s),
                mins: ctx.upload(&format!("{} mins [{r0}..]", t.name), &m),
            });
            r0 += n;
        }
        GpuMatrix { name: t.name.clone(), rows: t.rows, cols: t.cols, format, parts }
    }
}

pub struct GpuLayer {
    pub attn_norm: wgpu::Buffer, // (n_embd)
    pub attn_q: GpuMatrix,
    pub attn_k: GpuMatrix,
    pub attn_v: GpuMatrix,
    pub attn_output: GpuMatrix,
    pub ffn_norm: wgpu::Buffer, // (n_embd)
    pub ffn_gate: GpuMatrix,
    pub ffn_up: GpuMatrix,
    pub ffn_down: GpuMatrix,
}

/// A model's weights on one device.
pub struct GpuWeights {
    pub token_embd: GpuMatrix,
    pub layers: Vec<GpuLayer>,
    pub output_norm: wgpu::Buffer,
    /// `None`: tied to `token_embd`.
    pub output: Option<GpuMatrix>,
    /// Identifies the model these came from.
    pub fingerprint: (String, usize),
}

impl GpuWeights {
    pub fn upload(ctx: &GpuContext, model: &Model) -> GpuWeights {
        let w = &model.weights;
        let layers = w
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| GpuLayer {
                attn_norm: ctx.upload(&format!("blk.{i}.attn_norm"), &l.attn_norm),
                attn_q: GpuMatrix::upload(ctx, &l.attn_q),
                attn_k: GpuMatrix::upload(ctx, &l.attn_k),
                attn_v: GpuMatrix::upload(ctx, &l.attn_v),
                attn_output: GpuMatrix::upload(ctx, &l.attn_output),
                ffn_norm: ctx.upload(&format!("blk.{i}.ffn_norm"), &l.ffn_norm),
                ffn_gate: GpuMatrix::upload(ctx, &l.ffn_gate),
                ffn_up: GpuMatrix::upload(ctx, &l.ffn_up),
                ffn_down: GpuMatrix::upload(ctx, &l.ffn_down),
            })
            .collect();
        GpuWeights {
            token_embd: GpuMatrix::upload(ctx, &w.token_embd),
            layers,
            output_norm: ctx.upload("output_norm", &w.output_norm),
            output: w.output.as_ref().map(|o| GpuMatrix::upload(ctx, o)),
            fingerprint: fingerprint(model),
        }
    }

    pub fn output(&self) -> &GpuMatrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}

pub fn fingerprint(model: &Model) -> (String, usize) {
    (model.info.name.clone(), model.info.weight_bytes)
}
