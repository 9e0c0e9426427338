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
//! | Q5_0 | 32    | 22    | f16 d, u32 high bits, 16 B nibbles: `(q - 16) * d` |
//! | Q4_K | 256   | 144   | f16 d, f16 dmin, 12 B of 6-bit scales/mins, 128 B nibbles: 8 sub-blocks of 32, `q * (d·sc) - dmin·m` |
//! | Q6_K | 256   | 210   | 128 B low nibbles, 64 B high 2-bit pairs, 16 × i8 scales, f16 d: 16 sub-blocks of 16, `(d·sc) * (q - 32)` |
//!
//! In the 4-bit formats byte `j` holds element `j` in its low nibble and element `j + 16`
//! in its high nibble.

use std::sync::Arc;

use super::gguf::GgmlType;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum QuantError {
    #[error("tensor '{name}' has type {ty}, which attnlab cannot run yet (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K)")]
    UnsupportedType { name: String, ty: &'static str },
    #[error("tensor '{name}' has {cols} columns, not a multiple of {ty}'s block of {block}")]
    RaggedRows { name: String, ty: &'static str, cols: usize, block: usize },
    #[error("tensor '{name}' should have shape {expected:?} but has {found:?}")]
    WrongShape { name: String, expected: Vec<u64>, found: Vec<u64> },
}

pub const QK: usize = 32;

/// IEEE half to f32 (exact; handles subnormals, inf and NaN). Branch-free, so a loop of them
/// vectorises: the half's exponent and mantissa placed in an f32's low bits read as a value
/// 2¹¹² too small (f32 subnormals included, so half subnormals come out right), and one exact
/// multiply by 2¹¹² fixes that; exponent 31 (inf, NaN) is picked apart.
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let scaled = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000); // × 2¹¹²
    let magnitude = if h & 0x7c00 == 0x7c00 { 0x7f80_0000 | ((h & 0x3ff) << 13) } else { scaled.to_bits() };
    f32::from_bits(((h & 0x8000) << 16) | magnitude)
}

/// f32 to IEEE half, round to nearest even (used to write test models).
#[cfg(any(test, feature = "test-support"))]
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
        matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q6K)
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
        let block = ty.block_geometry().0 as usize;
        if cols % block != 0 {
            return Err(QuantError::RaggedRows { name: name.into(), ty: ty.name(), cols, block });
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
        GgmlType::Q5_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(src.chunks_exact(22)) {
                let d = rd_f16(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                for j in 0..16 {
                    let q = b[6 + j];
                    let h0 = (((qh >> j) << 4) & 0x10) as u8;
                    let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                    o[j] = (((q & 0x0f) | h0) as i32 - 16) as f32 * d;
                    o[j + 16] = (((q >> 4) | h1) as i32 - 16) as f32 * d;
                }
            }
        }
        GgmlType::Q4K => {
            for (o, b) in out.chunks_exact_mut(QK_K).zip(src.chunks_exact(144)) {
                let (d, dmin) = (rd_f16(b, 0), rd_f16(b, 2));
                let scales = &b[4..16];
                for (c, (o, q)) in o.chunks_exact_mut(64).zip(b[16..144].chunks_exact(32)).enumerate() {
                    let (sc1, m1) = k4_scale_min(2 * c, scales);
                    let (sc2, m2) = k4_scale_min(2 * c + 1, scales);
                    let (d1, min1, d2, min2) = (d * sc1 as f32, dmin * m1 as f32, d * sc2 as f32, dmin * m2 as f32);
                    for l in 0..32 {
                        o[l] = d1 * (q[l] & 0x0f) as f32 - min1;
                        o[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
                    }
                }
            }
        }
        GgmlType::Q6K => {
            for (o, b) in out.chunks_exact_mut(QK_K).zip(src.chunks_exact(210)) {
                let d = rd_f16(b, 208);
                for half in 0..2 {
                    let (ql, qh, sc) = (&b[half * 64..half * 64 + 64], &b[128 + half * 32..128 + half * 32 + 32], &b[192 + half * 8..192 + half * 8 + 8]);
                    let o = &mut o[half * 128..half * 128 + 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        o[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        o[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        o[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        o[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
            }
        }
        other => unreachable!("QTensor::new refuses {}", other.name()),
    }
}

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// Sub-block `j`'s 6-bit (scale, min) of a Q4_K super-block (ggml `get_scale_min_k4`).
#[inline]
pub fn k4_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Eight 32-bit integer lanes: what a fused kernel decodes a block's codes into (its SIMD
/// type; `[i32; 8]` for plain code and the tests). Kernels widen bytes straight from the block
/// into lanes and pick bits apart there; nothing is decoded to memory.
pub trait Codes: Copy {
    /// The 8 bytes, unsigned.
    fn bytes(b: &[u8; 8]) -> Self;
    /// The 8 bytes, two's complement.
    fn signed_bytes(b: &[u8; 8]) -> Self;
    /// Lane `l`: bit `first + l` of `bits` (0 or 1).
    fn bits(bits: u32, first: u32) -> Self;
    fn and(self, mask: i32) -> Self;
    /// Logical shift right, every lane by `n` (< 32).
    fn shr(self, n: u32) -> Self;
    fn shl(self, n: u32) -> Self;
    fn or(self, other: Self) -> Self;
}

impl Codes for [i32; 8] {
    fn bytes(b: &[u8; 8]) -> Self {
        b.map(|v| v as i32)
    }
    fn signed_bytes(b: &[u8; 8]) -> Self {
        b.map(|v| v as i8 as i32)
    }
    fn bits(bits: u32, first: u32) -> Self {
        std::array::from_fn(|l| (bits >> (first + l as u32) & 1) as i32)
    }
    fn and(self, mask: i32) -> Self {
        self.map(|v| v & mask)
    }
    fn shr(self, n: u32) -> Self {
        self.map(|v| ((v as u32) >> n) as i32)
    }
    fn shl(self, n: u32) -> Self {
        self.map(|v| v << n)
    }
    fn or(self, other: Self) -> Self {
        std::array::from_fn(|l| self[l] | other[l])
    }
}

/// What a fused kernel does with each 32 consecutive elements of an encoded row (see
/// `backends::cpu::ops::gemv`): element `e` of the group is `scale[h] · code(e) + offset[h]`
/// with `h = e / 16`, where `code(e)` is lane `e % 8` of `codes[e / 8]`. Without `HALVES` both
/// halves share one scale and offset (`scale[0] == scale[1]`, `offset[0] == offset[1]`);
/// without `OFFSET` the offsets are zero. The flags are constants of each format's loop.
///
/// A kernel applies the affine part once per half to a whole dot product:
/// `Σ x·w = scale · Σ x·code + offset · Σ x`, with `Σ x` per 16 elements computed once per
/// activation row.
pub trait GroupSink<C> {
    fn group<const HALVES: bool, const OFFSET: bool>(&mut self, codes: [C; 4], scale: [f32; 2], offset: [f32; 2]);
}

/// Whether [`for_each_group`] reads this type (the block-quantized ones; F32, F16 and BF16 are
/// plain values).
pub fn has_groups(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q6K)
}

/// Eight bytes at `at`.
#[inline(always)]
fn eight(b: &[u8], at: usize) -> &[u8; 8] {
    b[at..at + 8].try_into().unwrap()
}

/// Hands `sink` each group of 32 elements of one encoded row (`row.len()` a whole number of
/// blocks of `ty`, [`has_groups`] true), in element order. `halves(b)` widens the four f16 in
/// `b` ([`f16_to_f32`] each, or the CPU's own instruction), for the blocks' scales. Inlined
/// into each kernel, so each format's loop is compiled with its layout as constants.
#[inline(always)]
pub fn for_each_group<C: Codes>(ty: GgmlType, row: &[u8], halves: impl Fn(&[u8; 8]) -> [f32; 4], sink: &mut impl GroupSink<C>) {
    // 16 bytes of a 4-bit block: byte j holds element j (low nibble) and j + 16 (high nibble).
    let nibbles = |q: &[u8]| {
        let (a, b) = (C::bytes(eight(q, 0)), C::bytes(eight(q, 8)));
        [a.and(15), b.and(15), a.shr(4), b.shr(4)]
    };
    match ty {
        GgmlType::Q4_0 => {
            for b in row.chunks_exact(18) {
                let d = halves(eight(b, 0))[0];
                sink.group::<false, true>(nibbles(&b[2..]), [d; 2], [-8.0 * d; 2]);
            }
        }
        GgmlType::Q4_1 => {
            for b in row.chunks_exact(20) {
                let [d, m, ..] = halves(eight(b, 0));
                sink.group::<false, true>(nibbles(&b[4..]), [d; 2], [m; 2]);
            }
        }
        GgmlType::Q8_0 => {
            for b in row.chunks_exact(34) {
                let d = halves(eight(b, 0))[0];
                let codes = std::array::from_fn(|i| C::signed_bytes(eight(b, 2 + 8 * i)));
                sink.group::<false, false>(codes, [d; 2], [0.0; 2]);
            }
        }
        GgmlType::Q5_0 => {
            for b in row.chunks_exact(22) {
                let d = halves(eight(b, 0))[0];
                // Bit e of qh is element e's fifth bit.
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let mut codes = nibbles(&b[6..]);
                for (i, c) in codes.iter_mut().enumerate() {
                    *c = c.or(C::bits(qh, 8 * i as u32).shl(4));
                }
                sink.group::<false, true>(codes, [d; 2], [-16.0 * d; 2]);
            }
        }
        GgmlType::Q4K => {
            for b in row.chunks_exact(144) {
                let [d, dmin, ..] = halves(eight(b, 0));
                let scales = &b[4..16];
                // 32 bytes per 64 elements: the low nibbles are sub-block 2c, the high ones 2c + 1.
                for c in 0..4 {
                    let q: [C; 4] = std::array::from_fn(|i| C::bytes(eight(b, 16 + 32 * c + 8 * i)));
                    let ((sc1, m1), (sc2, m2)) = (k4_scale_min(2 * c, scales), k4_scale_min(2 * c + 1, scales));
                    sink.group::<false, true>(q.map(|v| v.and(15)), [d * sc1 as f32; 2], [-(dmin * m1 as f32); 2]);
                    sink.group::<false, true>(q.map(|v| v.shr(4)), [d * sc2 as f32; 2], [-(dmin * m2 as f32); 2]);
                }
            }
        }
        GgmlType::Q6K => {
            for b in row.chunks_exact(210) {
                let d = halves(eight(b, 202))[3];
                for half in 0..2 {
                    let (ql, qh, sc) = (64 * half, 128 + 32 * half, 192 + 8 * half);
                    // Elements 32g + l (g < 4, l < 32) of this half: the low 4 bits in the low
                    // (g < 2) or high nibble of ql[l + 32 (g & 1)], the top 2 bits at bit 2g of qh[l].
                    let lo: [C; 8] = std::array::from_fn(|i| C::bytes(eight(b, ql + 8 * i)));
                    let hi: [C; 4] = std::array::from_fn(|i| C::bytes(eight(b, qh + 8 * i)));
                    for g in 0..4 {
                        let codes = std::array::from_fn(|i| {
                            let l = lo[4 * (g & 1) + i];
                            let l = if g < 2 { l.and(15) } else { l.shr(4) };
                            l.or(hi[i].shr(2 * g as u32).and(3).shl(4))
                        });
                        let scale = [d * (b[sc + 2 * g] as i8) as f32, d * (b[sc + 2 * g + 1] as i8) as f32];
                        sink.group::<true, true>(codes, scale, scale.map(|s| -32.0 * s));
                    }
                }
            }
        }
        other => unreachable!("for_each_group: {} has no groups", other.name()),
    }
}

/// Quantizers (ggml's reference `quantize_row_*_ref`), used to write test models.
#[cfg(any(test, feature = "test-support"))]
pub mod quantize {
    use super::{f32_to_f16, GgmlType, QTensor, QK};

    /// Deterministic pseudo-random values in [-1, 1).
    pub fn random_values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Weights of type `ty`, (rows, cols): the quantizers where the crate has them, else random
    /// blocks (every bit pattern of the codes) with sane f16 scales of both signs.
    pub fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> QTensor {
        let w = random_values(rows * cols, seed);
        let data = match ty {
            GgmlType::Q4_0 => q4_0(&w),
            GgmlType::Q4_1 => q4_1(&w),
            GgmlType::Q8_0 => q8_0(&w),
            GgmlType::F16 => f16_bytes(&w),
            GgmlType::F32 => f32_bytes(&w),
            _ => {
                let (block, size) = ty.block_geometry();
                let (block, size) = (block as usize, size as usize);
                // Where each block keeps its f16 scales (Q5_0: d; Q4_K: d, dmin; Q6_K: d).
                let halves: &[usize] = match ty {
                    GgmlType::Q5_0 => &[0],
                    GgmlType::Q4K => &[0, 2],
                    _ => &[208],
                };
                let mut s = seed;
                let mut data: Vec<u8> = (0..rows * cols / block * size)
                    .map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (s >> 56) as u8
                    })
                    .collect();
                for (b, block) in data.chunks_exact_mut(size).enumerate() {
                    for (k, &at) in halves.iter().enumerate() {
                        let v = 0.002 * ((b % 7) as f32 - 3.0 + 0.5 * k as f32) / (1 + k) as f32;
                        block[at..at + 2].copy_from_slice(&super::f32_to_f16(v).to_le_bytes());
                    }
                }
                data
            }
        };
        QTensor::new("w", ty, rows, cols, data).unwrap()
    }

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

    /// The branch-free conversion against the plain one it replaced, bit for bit, every half.
    #[test]
    fn f16_to_f32_equals_the_plain_conversion_on_every_half() {
        fn plain(h: u16) -> f32 {
            let sign = ((h as u32) & 0x8000) << 16;
            let (exp, mant) = (((h >> 10) & 0x1f) as u32, (h & 0x3ff) as u32);
            let bits = if exp == 0 && mant == 0 {
                sign
            } else if exp == 0 {
                let (mut e, mut m) = (127 - 15 + 1, mant);
                while m & 0x400 == 0 {
                    m <<= 1;
                    e -= 1;
                }
                sign | (e << 23) | ((m & 0x3ff) << 13)
            } else if exp == 0x1f {
                sign | 0x7f80_0000 | (mant << 13)
            } else {
                sign | ((exp + 127 - 15) << 23) | (mant << 13)
            };
            f32::from_bits(bits)
        }
        for h in 0u16..=0xffff {
            assert_eq!(f16_to_f32(h).to_bits(), plain(h).to_bits(), "half {h:#06x}");
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

    /// A group as the kernels get it, kept for checking.
    #[derive(Debug)]
    struct Group {
        codes: [[i32; 8]; 4],
        halves: bool,
        offset: bool,
        scale: [f32; 2],
        offsets: [f32; 2],
    }

    impl Group {
        /// Element `e` (< 32), f32 arithmetic as `GroupSink` documents it.
        fn value(&self, e: usize) -> f32 {
            let h = e / 16;
            self.scale[h] * self.codes[e / 8][e % 8] as f32 + self.offsets[h]
        }
    }

    impl GroupSink<[i32; 8]> for Vec<Group> {
        fn group<const HALVES: bool, const OFFSET: bool>(&mut self, codes: [[i32; 8]; 4], scale: [f32; 2], offsets: [f32; 2]) {
            assert!(HALVES || (scale[0] == scale[1] && offsets[0] == offsets[1]));
            assert!(OFFSET || offsets == [0.0; 2]);
            self.push(Group { codes, halves: HALVES, offset: OFFSET, scale, offsets });
        }
    }

    fn groups(ty: GgmlType, row: &[u8]) -> Vec<Group> {
        let mut groups = Vec::new();
        for_each_group(ty, row, |b: &[u8; 8]| std::array::from_fn(|i| f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))), &mut groups);
        groups
    }

    /// The fused kernels' groups of the 32-element formats against `dequantize`: random codes
    /// (every bit pattern), scales of both signs.
    #[test]
    fn groups_of_q4_0_q4_1_q8_0_match_dequantize() {
        for (ty, size, halves_at) in [(GgmlType::Q4_0, 18, &[0][..]), (GgmlType::Q4_1, 20, &[0, 2]), (GgmlType::Q8_0, 34, &[0])] {
            let blocks = 9;
            let mut src = bytes(blocks * size, 40 + ty.id() as u64);
            for b in 0..blocks {
                for (k, &at) in halves_at.iter().enumerate() {
                    let v = f32_to_f16(0.02 * (b as f32 - 4.0) + 0.3 * k as f32);
                    src[b * size + at..b * size + at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            let mut want = vec![f32::NAN; blocks * QK];
            dequantize(ty, &src, &mut want);
            let groups = groups(ty, &src);
            assert_eq!(groups.len(), blocks);
            for (b, g) in groups.iter().enumerate() {
                assert!(!g.halves && g.offset == (ty != GgmlType::Q8_0));
                for e in 0..QK {
                    let (got, expect) = (g.value(e), want[b * QK + e]);
                    let tol = 1e-6 * (1.0 + 256.0 * g.scale[0].abs() + g.offsets[0].abs());
                    assert!((got - expect).abs() <= tol, "{} block {b} element {e}: {got} vs {expect}", ty.name());
                }
            }
        }
    }

    /// Pseudo-random bytes (an LCG), so every bit pattern of the quants gets exercised.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    /// Per-element references, written from the block layouts in ggml-common.h one element
    /// at a time (no shared code with the block loops above).
    fn q5_0_ref(b: &[u8], e: usize) -> f32 {
        let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let byte = b[6 + e % 16];
        let nib = if e < 16 { byte & 15 } else { byte >> 4 } as u32;
        let q = nib | (((qh >> e) & 1) << 4);
        (q as f32 - 16.0) * d
    }
    fn q4_k_ref(b: &[u8], e: usize) -> f32 {
        let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        let dmin = f16_to_f32(u16::from_le_bytes([b[2], b[3]]));
        let s = &b[4..16];
        let sub = e / 32;
        let (sc, m) = if sub < 4 { (s[sub] & 63, s[sub + 4] & 63) } else { ((s[sub + 4] & 15) | ((s[sub - 4] >> 6) << 4), (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4)) };
        let byte = b[16 + (e / 64) * 32 + e % 32];
        let q = if (e % 64) < 32 { byte & 15 } else { byte >> 4 };
        d * sc as f32 * q as f32 - dmin * m as f32
    }
    fn q6_k_ref(b: &[u8], e: usize) -> f32 {
        let d = f16_to_f32(u16::from_le_bytes([b[208], b[209]]));
        let (half, r) = (e / 128, e % 128);
        let (g, l) = (r / 32, r % 32);
        let lo = b[half * 64 + l + (g & 1) * 32];
        let lo = if g < 2 { lo & 15 } else { lo >> 4 };
        let hi = (b[128 + half * 32 + l] >> (2 * g)) & 3;
        let sc = b[192 + half * 8 + l / 16 + 2 * g] as i8;
        d * sc as f32 * ((lo | (hi << 4)) as i32 - 32) as f32
    }

    #[test]
    fn q5_0_q4_k_q6_k_match_per_element_references() {
        let half = |x: f32| f32_to_f16(x).to_le_bytes();
        type Reference = fn(&[u8], usize) -> f32;
        let cases: [(GgmlType, usize, usize, Reference, &[usize]); 3] = [
            (GgmlType::Q5_0, 32, 22, q5_0_ref, &[0]),
            (GgmlType::Q4K, 256, 144, q4_k_ref, &[0, 2]),
            (GgmlType::Q6K, 256, 210, q6_k_ref, &[208]),
        ];
        for (ty, block, size, reference, scale_at) in cases {
            let blocks = 7;
            let mut src = bytes(blocks * size, ty.id() as u64);
            for b in 0..blocks {
                for (k, &at) in scale_at.iter().enumerate() {
                    let v = half(0.013 * (b as f32 + 1.0) * if k == 0 { 1.0 } else { 0.7 } * if b % 2 == 1 { -1.0 } else { 1.0 });
                    src[b * size + at..b * size + at + 2].copy_from_slice(&v);
                }
            }
            let mut out = vec![f32::NAN; blocks * block];
            dequantize(ty, &src, &mut out);
            for b in 0..blocks {
                for e in 0..block {
                    let expect = reference(&src[b * size..(b + 1) * size], e);
                    assert_eq!(out[b * block + e], expect, "{} block {b} element {e}", ty.name());
                }
            }
            // The fused kernels' view of the same blocks: every group's elements.
            let groups = groups(ty, &src);
            assert_eq!(groups.len(), blocks * block / 32);
            for (gi, g) in groups.iter().enumerate() {
                assert!(g.offset && g.halves == (ty == GgmlType::Q6K));
                for e in 0..32 {
                    let expect = reference(&src[gi * 32 / block * size..][..size], gi * 32 % block + e);
                    let (got, h) = (g.value(e), e / 16);
                    let tol = 1e-6 * (1.0 + 256.0 * g.scale[h].abs() + g.offsets[h].abs()); // f32 rounding of scale · code + offset
                    assert!((got - expect).abs() <= tol, "{} group {gi} element {e}: {got} vs {expect}", ty.name());
                }
            }
            // A tensor of these blocks: rows must be whole blocks.
            assert!(QTensor::new("t", ty, blocks, block, src.clone()).is_ok());
            assert!(matches!(QTensor::new("t", ty, 1, block / 2 * 3, vec![0; size * 3 / 2]), Err(QuantError::RaggedRows { .. }) | Err(QuantError::WrongShape { .. })));
        }
    }
}
