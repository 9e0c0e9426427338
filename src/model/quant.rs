//! Quantized weight tensors and their block formats (ggml `ggml-common.h`).
//!
//! Weights stay quantized in memory: a [`QTensor`] owns the raw GGUF blocks. Kernels
//! dequantize a few rows at a time into a small f32 scratch and multiply there, so the model
//! never exists as a full f32 copy.
//!
//! | type | block | bytes | value                                             |
//! |------|-------|-------|---------------------------------------------------|
//! | Q4_0 | 32    | 18    | f16 d, 16 B nibbles: `(q - 8) * d`                 |
//! | Q4_1 | 32    | 20    | f16 d, f16 m, 16 B nibbles: `q * d + m`            |
//! | Q8_0 | 32    | 34    | f16 d, 32 x i8: `q * d`                            |
//!
//! In the 4-bit formats byte `j` holds element `j` in its low nibble and element `j + 16`
//! in its high nibble.

use std::sync::Arc;

use super::gguf::GgmlType;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum QuantError {
    #[error("tensor '{name}' has type {ty}, which attnlab cannot run yet (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)")]
    UnsupportedType { name: String, ty: &'static str },
    #[error("tensor '{name}' should have shape {expected:?} but has {found:?}")]
    WrongShape { name: String, expected: Vec<u64>, found: Vec<u64> },
}

pub const QK: usize = 32;

/// IEEE half to f32 (exact; handles subnormals, inf and NaN).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if mant == 0 {
            sign
        } else {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = mant;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 127 - 15) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

/// f32 to IEEE half, round to nearest even (used to write test models).
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let half = 0x1000u32;
    let mut out = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    if rest > half || (rest == half && (out & 1) == 1) {
        out += 1;
    }
    sign | out as u16
}

#[inline]
fn rd_f16(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// A 2-D weight matrix `(rows, cols)` in its GGUF encoding; each row is `cols` contiguous
/// elements (ggml `ne[0] = cols`).
#[derive(Debug, Clone)]
pub struct QTensor {
    pub name: String,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// The bytes this tensor's blocks live in (the whole GGUF file when loaded by
    /// [`crate::Model::from_gguf_vec`], so weights are never copied).
    store: Arc<Vec<u8>>,
    /// Where in `store`: (rows, cols / block) blocks, row-major.
    range: std::ops::Range<usize>,
}

impl QTensor {
    pub fn is_supported(ty: GgmlType) -> bool {
        matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0)
    }

    /// A tensor owning its encoded blocks.
    pub fn new(name: &str, ty: GgmlType, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, QuantError> {
        let len = data.len();
        Self::from_shared(name, ty, rows, cols, Arc::new(data), 0..len)
    }

    /// A tensor whose blocks are `store[range]`.
    pub fn from_shared(name: &str, ty: GgmlType, rows: usize, cols: usize, store: Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Result<Self, QuantError> {
        if !Self::is_supported(ty) {
            return Err(QuantError::UnsupportedType { name: name.into(), ty: ty.name() });
        }
        let t = QTensor { name: name.into(), ty, rows, cols, store, range };
        let expected = t.row_bytes() * rows;
        if t.range.len() != expected || t.range.end > t.store.len() {
            return Err(QuantError::WrongShape { name: name.into(), expected: vec![expected as u64], found: vec![t.range.len() as u64] });
        }
        Ok(t)
    }

    /// The encoded blocks.
    pub fn data(&self) -> &[u8] {
        &self.store[self.range.clone()]
    }

    /// Bytes of one row in the encoded form.
    pub fn row_bytes(&self) -> usize {
        let (block, size) = self.ty.block_geometry();
        self.cols / block as usize * size as usize
    }

    /// Dequantizes row `r` into `out` (`out.len() == cols`).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        dequantize(self.ty, &self.data()[r * rb..(r + 1) * rb], out);
    }

    /// Dequantizes rows `r0..r0 + n` into `out` (n × cols, row-major).
    pub fn dequantize_rows(&self, r0: usize, n: usize, out: &mut [f32]) {
        for i in 0..n {
            self.dequantize_row(r0 + i, &mut out[i * self.cols..(i + 1) * self.cols]);
        }
    }

    /// Whole tensor as f32 (tests and small tensors only).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        self.dequantize_rows(0, self.rows, &mut out);
        out
    }
}

/// Dequantizes a run of encoded elements. `out.len()` elements are produced.
pub fn dequantize(ty: GgmlType, src: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        GgmlType::Q4_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(src.chunks_exact(18)) {
                let d = rd_f16(b, 0);
                for j in 0..16 {
                    let q = b[2 + j];
                    o[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
                    o[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(src.chunks_exact(20)) {
                let d = rd_f16(b, 0);
                let m = rd_f16(b, 2);
                for j in 0..16 {
                    let q = b[4 + j];
                    o[j] = (q & 0x0f) as f32 * d + m;
                    o[j + 16] = (q >> 4) as f32 * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(src.chunks_exact(34)) {
                let d = rd_f16(b, 0);
                for j in 0..QK {
                    o[j] = (b[2 + j] as i8) as f32 * d;
                }
            }
        }
        other => unreachable!("QTensor::new refuses {}", other.name()),
    }
}

/// Quantizers (ggml's reference `quantize_row_*_ref`), used to write test models.
pub mod quantize {
    use super::{f32_to_f16, QK};

    pub fn q8_0(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(x.len() / QK * 34);
        for blk in x.chunks_exact(QK) {
            let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
            for v in blk {
                out.push(((v * id).round() as i8) as u8);
            }
        }
        out
    }

    pub fn q4_1(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(x.len() / QK * 20);
        for blk in x.chunks_exact(QK) {
            let min = blk.iter().cloned().fold(f32::INFINITY, f32::min);
            let max = blk.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let d = (max - min) / 15.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
            out.extend_from_slice(&f32_to_f16(min).to_le_bytes());
            for j in 0..16 {
                let lo = (((blk[j] - min) * id + 0.5) as u8).min(15);
                let hi = (((blk[j + 16] - min) * id + 0.5) as u8).min(15);
                out.push(lo | (hi << 4));
            }
        }
        out
    }

    pub fn q4_0(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(x.len() / QK * 18);
        for blk in x.chunks_exact(QK) {
            let (mut amax, mut maxv) = (0f32, 0f32);
            for &v in blk {
                if v.abs() > amax {
                    amax = v.abs();
                    maxv = v;
                }
            }
            let d = maxv / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
            for j in 0..16 {
                let lo = ((blk[j] * id + 8.5) as u8).min(15);
                let hi = ((blk[j + 16] * id + 8.5) as u8).min(15);
                out.push(lo | (hi << 4));
            }
        }
        out
    }

    pub fn f32_bytes(x: &[f32]) -> Vec<u8> {
        x.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    pub fn f16_bytes(x: &[f32]) -> Vec<u8> {
        x.iter().flat_map(|v| f32_to_f16(*v).to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip_on_every_finite_half() {
        for h in 0u16..=0xffff {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
                continue;
            }
            assert_eq!(f32_to_f16(f), h, "half {h:#06x} -> {f}");
        }
    }

    #[test]
    fn quantizers_round_trip_within_one_step() {
        let x: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        for (ty, bytes, step) in [
            (GgmlType::Q8_0, quantize::q8_0(&x), 3.0 / 127.0),
            (GgmlType::Q4_1, quantize::q4_1(&x), 6.0 / 15.0),
            (GgmlType::Q4_0, quantize::q4_0(&x), 3.0 / 8.0),
        ] {
            let mut out = vec![0.0; x.len()];
            dequantize(ty, &bytes, &mut out);
            for (a, b) in x.iter().zip(&out) {
                assert!((a - b).abs() <= step, "{}: {a} vs {b}", ty.name());
            }
        }
    }
}
