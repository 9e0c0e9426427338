//! Weights on the GPU, still quantized, repacked into u32-aligned arrays for WGSL.
//!
//! GGUF blocks interleave an f16 scale (and min) with the quants, and their 18/20/22/34-byte
//! sizes break 4-byte alignment. WGSL reads `array<u32>` and `array<f32>`, so each matrix is
//! split into three arrays (see `shaders/dequant.wgsl`): packed quants, f32 scales, f32 mins.
//! Every type maps exactly onto one of four layouts: Q4_0/Q4_1/Q4_K → 4-bit with scale and
//! min per 32 (Q4_K's sub-block scale `d·sc` and min `dmin·m` computed in f32 as the CPU does);
//! Q8_0/Q5_0 → signed bytes with a scale per 32 (Q5_0 as `q − 16`); Q6_K → signed bytes
//! (`q − 32`) with a scale `d·sc` per 16; anything else → f32.
//! A matrix larger than `max_storage_buffer_binding_size` is split by rows into parts.

use std::collections::HashMap;

use crate::model::arch::Vector;
use crate::model::gguf::GgmlType;
use crate::model::quant::{f16_to_f32, k4_scale_min, QTensor};
use crate::model::Model;

use super::context::GpuContext;

pub const FORMAT_Q4: u32 = 0;
pub const FORMAT_Q8: u32 = 1;
pub const FORMAT_F32: u32 = 2;
pub const FORMAT_Q8S16: u32 = 3;

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
        GgmlType::Q4K => {
            let nb = bytes.len() / 144;
            let (mut q, mut s, mut m) = (Vec::with_capacity(nb * 32), Vec::with_capacity(nb * 8), Vec::with_capacity(nb * 8));
            for b in bytes.chunks_exact(144) {
                let (d, dmin) = (f16(&b[0..2]), f16(&b[2..4]));
                for sub in 0..8 {
                    let (sc, mn) = k4_scale_min(sub, &b[4..16]);
                    s.push(d * sc as f32);
                    m.push(-(dmin * mn as f32));
                    // The sub-block's 32 nibbles, re-packed: byte j = element j | element j+16 << 4.
                    let src = &b[16 + (sub / 2) * 32..16 + (sub / 2) * 32 + 32];
                    let nib = |l: usize| if sub % 2 == 0 { src[l] & 0x0f } else { src[l] >> 4 };
                    let packed: Vec<u8> = (0..16).map(|j| nib(j) | (nib(j + 16) << 4)).collect();
                    q.extend(packed.chunks_exact(4).map(word));
                }
            }
            (FORMAT_Q4, q, s, m)
        }
        GgmlType::Q5_0 | GgmlType::Q6K => {
            // The signed integers, decoded as in quant.rs, one byte each.
            let (block, size) = if t.ty == GgmlType::Q5_0 { (32, 22) } else { (256, 210) };
            let nb = bytes.len() / size;
            let mut ints: Vec<u8> = Vec::with_capacity(nb * block);
            let mut s = Vec::with_capacity(nb * block / 16);
            for b in bytes.chunks_exact(size) {
                if t.ty == GgmlType::Q5_0 {
                    let d = f16(&b[0..2]);
                    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                    for e in 0..32 {
                        let byte = b[6 + e % 16];
                        let nib = if e < 16 { byte & 15 } else { byte >> 4 } as u32;
                        ints.push(((nib | (((qh >> e) & 1) << 4)) as i32 - 16) as i8 as u8);
                    }
                    s.push(d);
                } else {
                    let d = f16(&b[208..210]);
                    for e in 0..256 {
                        let (half, r) = (e / 128, e % 128);
                        let (g, l) = (r / 32, r % 32);
                        let lo = b[half * 64 + l + (g & 1) * 32];
                        let lo = if g < 2 { lo & 15 } else { lo >> 4 };
                        let hi = (b[128 + half * 32 + l] >> (2 * g)) & 3;
                        ints.push(((lo | (hi << 4)) as i32 - 32) as i8 as u8);
                    }
                    for sub in 0..16 {
                        s.push(d * (b[192 + sub] as i8) as f32);
                    }
                }
            }
            let format = if t.ty == GgmlType::Q5_0 { FORMAT_Q8 } else { FORMAT_Q8S16 };
            (format, ints.chunks_exact(4).map(word).collect(), s, vec![0.0])
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
            GgmlType::Q4_1 | GgmlType::Q4_0 | GgmlType::Q4K => t.cols / 2,
            GgmlType::Q8_0 | GgmlType::Q5_0 | GgmlType::Q6K => t.cols,
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

/// A model's weights on one device, found by their GGUF names (the forward pass names the
/// host tensor; the GPU ops look up its resident copy).
pub struct GpuWeights {
    pub matrices: HashMap<String, GpuMatrix>,
    pub vectors: HashMap<String, wgpu::Buffer>,
    /// Identifies the model these came from.
    pub fingerprint: (String, usize, u64),
}

impl GpuWeights {
    pub fn upload(ctx: &GpuContext, model: &Model) -> GpuWeights {
        let (mats, vecs) = model.tensors();
        GpuWeights {
            matrices: mats.into_iter().map(|t| (t.name.clone(), GpuMatrix::upload(ctx, t))).collect(),
            vectors: vecs.into_iter().map(|v| (v.name.clone(), ctx.upload(&v.name, &v.data))).collect(),
            fingerprint: fingerprint(model),
        }
    }

    pub fn matrix(&self, t: &QTensor) -> &GpuMatrix {
        self.matrices.get(&t.name).unwrap_or_else(|| panic!("{} was not uploaded", t.name))
    }

    pub fn vector(&self, v: &Vector) -> &wgpu::Buffer {
        self.vectors.get(&v.name).unwrap_or_else(|| panic!("{} was not uploaded", v.name))
    }
}

pub fn fingerprint(model: &Model) -> (String, usize, u64) {
    (model.info.name.clone(), model.info.weight_bytes, model.info.content_hash)
}
