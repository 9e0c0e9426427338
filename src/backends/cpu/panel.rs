//! The browser's matmul kernel: `out = x · wᵀ` on four-lane vectors (wasm SIMD128), where the
//! native build uses `matrixmultiply` (AVX2/AVX-512 FMA chosen at run time).
//!
//! Why not `matrixmultiply` on wasm too: its SIMD128 kernel broadcasts each value of A with a
//! lane shuffle, and shuffles share the floating-point ports with the multiplies and adds, so
//! it tops out near a third of the vector peak. Here the broadcast is a load
//! (`v128.load32_splat`, a `vbroadcastss` from memory under V8), which the load units serve:
//! per reduction step a `TOKENS × 8` tile needs 2 weight loads, `TOKENS` splat loads and
//! `2 · TOKENS` multiply-adds, and nothing else.
//!
//! The weights are dequantized into panels of [`PANEL`] rows laid out column by column
//! (`panel[k · 8 + j] = w[r0 + j, k]`), so a step reads 8 consecutive floats. The same code
//! runs natively on a plain `[f32; 4]` lane type, which is how the unit tests check it.

use crate::model::quant::QTensor;

/// Weight rows per panel: two four-lane vectors per reduction step.
pub const PANEL: usize = 8;
const VECS: usize = PANEL / 4;
/// Tokens per micro-kernel call: 8 accumulators, 2 weight vectors and the splats stay within
/// x86's 16 vector registers, onto which V8 maps wasm's locals. Measured on a 240-token forward
/// pass in Chromium: 4 tokens × 8 rows best; 5 or 6 tokens (or 4 × 12 rows) spill and lose
/// 40–70 %.
pub const TOKENS: usize = 4;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::*;
    #[derive(Clone, Copy)]
    pub struct F4(v128);
    impl F4 {
        #[inline(always)]
        pub fn zero() -> F4 {
            F4(f32x4_splat(0.0))
        }
        /// Four floats at `p` (unaligned). SAFETY: `p .. p + 4` readable.
        #[inline(always)]
        pub unsafe fn load(p: *const f32) -> F4 {
            F4(v128_load(p as *const v128))
        }
        /// `*p` in every lane. SAFETY: `p` readable.
        #[inline(always)]
        pub unsafe fn splat_load(p: *const f32) -> F4 {
            F4(v128_load32_splat(p as *const u32))
        }
        /// One fused multiply-add where the build has relaxed SIMD (`f32x4.relaxed_madd`),
        /// a multiply and an add otherwise.
        #[inline(always)]
        pub fn mul_add(self, b: F4, acc: F4) -> F4 {
            #[cfg(target_feature = "relaxed-simd")]
            return F4(f32x4_relaxed_madd(self.0, b.0, acc.0));
            #[cfg(not(target_feature = "relaxed-simd"))]
            return F4(f32x4_add(f32x4_mul(self.0, b.0), acc.0));
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            [f32x4_extract_lane::<0>(self.0), f32x4_extract_lane::<1>(self.0), f32x4_extract_lane::<2>(self.0), f32x4_extract_lane::<3>(self.0)]
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    /// Plain lanes with the same semantics (multiply, then add), for native tests.
    #[derive(Clone, Copy)]
    pub struct F4([f32; 4]);
    impl F4 {
        pub fn zero() -> F4 {
            F4([0.0; 4])
        }
        /// SAFETY: `p .. p + 4` readable.
        pub unsafe fn load(p: *const f32) -> F4 {
            F4([*p, *p.add(1), *p.add(2), *p.add(3)])
        }
        /// SAFETY: `p` readable.
        pub unsafe fn splat_load(p: *const f32) -> F4 {
            F4([*p; 4])
        }
        pub fn mul_add(self, b: F4, acc: F4) -> F4 {
            F4(std::array::from_fn(|i| self.0[i] * b.0[i] + acc.0[i]))
        }
        pub fn to_array(self) -> [f32; 4] {
            self.0
        }
    }
}

use lanes::F4;

/// Rows `r0 .. r0 + nr` (nr ≤ 8) of `w` as one panel: `panel[k · 8 + j] = w[r0 + j, k]`, zeros
/// for j ≥ nr. `row`: a scratch of `w.cols` floats. panel: (cols, 8).
pub fn pack_panel(w: &QTensor, r0: usize, nr: usize, row: &mut [f32], panel: &mut [f32]) {
    let cols = w.cols;
    assert!(nr <= PANEL && row.len() == cols && panel.len() == cols * PANEL);
    if nr < PANEL {
        panel.fill(0.0);
    }
    for j in 0..nr {
        w.dequantize_row(r0 + j, row);
        for (k, v) in row.iter().enumerate() {
            panel[k * PANEL + j] = *v;
        }
    }
}

/// Where a panel's products go: columns `c0 .. c0 + nr` of `out` (*, stride).
pub struct Dest<'a> {
    pub out: &'a mut [f32],
    pub stride: usize,
    pub c0: usize,
    pub nr: usize,
}

/// `out[t, c0 + j] = Σ_k x[t, k] · panel[k, j]` for the `T` tokens starting at row `t0` of
/// `x` (T ≤ TOKENS) and j < nr. x: (*, cols); panel: (cols, 8).
#[inline(always)]
fn tile<const T: usize>(x: &[f32], t0: usize, cols: usize, panel: &[f32], d: &mut Dest) {
    assert!((t0 + T) * cols <= x.len() && panel.len() >= cols * PANEL);
    let mut acc = [[F4::zero(); VECS]; T];
    let xp = x[t0 * cols..].as_ptr();
    let pp = panel.as_ptr();
    for k in 0..cols {
        // SAFETY: k < cols; the panel holds cols · PANEL floats and x rows t0 .. t0 + T (asserted).
        unsafe {
            let b: [F4; VECS] = std::array::from_fn(|v| F4::load(pp.add(k * PANEL + 4 * v)));
            for (i, a) in acc.iter_mut().enumerate() {
                let xv = F4::splat_load(xp.add(i * cols + k));
                for v in 0..VECS {
                    a[v] = xv.mul_add(b[v], a[v]);
                }
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let o = &mut d.out[(t0 + i) * d.stride + d.c0..];
        for j in 0..d.nr {
            o[j] = a[j / 4].to_array()[j % 4];
        }
    }
}

/// `out[t, c0 .. c0 + nr] = x[t, :] · panelᵀ` for every token t < n, TOKENS at a time.
pub fn panel_matmul(x: &[f32], n: usize, cols: usize, panel: &[f32], d: &mut Dest) {
    let mut t0 = 0;
    while t0 + TOKENS <= n {
        tile::<TOKENS>(x, t0, cols, panel, d);
        t0 += TOKENS;
    }
    match n - t0 {
        0 => {}
        1 => tile::<1>(x, t0, cols, panel, d),
        2 => tile::<2>(x, t0, cols, panel, d),
        3 => tile::<3>(x, t0, cols, panel, d),
        r => unreachable!("{r} ≥ TOKENS"),
    }
}

/// `out = x · wᵀ` with x (n, cols), w (rows, cols) quantized, out (n, rows): one panel of 8
/// weight rows dequantized at a time (2 · cols floats of scratch besides the panel).
pub fn matmul_qt(x: &[f32], n: usize, w: &QTensor, out: &mut [f32]) {
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(x.len(), n * cols, "matmul_qt: x has {} values, expected {n} × {cols}", x.len());
    assert_eq!(out.len(), n * rows);
    let (mut row, mut panel) = (vec![0.0; cols], vec![0.0; cols * PANEL]);
    for r0 in (0..rows).step_by(PANEL) {
        let nr = PANEL.min(rows - r0);
        pack_panel(w, r0, nr, &mut row, &mut panel);
        panel_matmul(x, n, cols, &panel, &mut Dest { out: &mut *out, stride: rows, c0: r0, nr });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gguf::GgmlType;
    use crate::backends::cpu::ops::tests::values;
    use crate::model::quant::quantize;

    /// Against a plain f64 triple loop on the dequantized weights: every token remainder
    /// (n mod 4), partial panels (rows mod 8), every quant type the engine reads.
    #[test]
    fn panel_matmul_matches_the_plain_product_on_odd_shapes() {
        for (ty, rows, cols) in [(GgmlType::Q4_1, 13, 64), (GgmlType::Q8_0, 8, 96), (GgmlType::Q4_0, 17, 32), (GgmlType::F16, 5, 40), (GgmlType::F32, 9, 7)] {
            let wf = values(rows * cols, 3);
            let data = match ty {
                GgmlType::Q4_1 => quantize::q4_1(&wf),
                GgmlType::Q8_0 => quantize::q8_0(&wf),
                GgmlType::Q4_0 => quantize::q4_0(&wf),
                GgmlType::F16 => quantize::f16_bytes(&wf),
                _ => wf.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            let w = QTensor::new("w", ty, rows, cols, data).unwrap();
            let mut dq = vec![0.0; rows * cols];
            w.dequantize_rows(0, rows, &mut dq);
            for n in [1, 2, 5, 6, 7, 13, 20] {
                let x = values(n * cols, n as u64);
                let mut got = vec![f32::NAN; n * rows];
                matmul_qt(&x, n, &w, &mut got);
                for t in 0..n {
                    for r in 0..rows {
                        let want: f64 = (0..cols).map(|k| x[t * cols + k] as f64 * dq[r * cols + k] as f64).sum();
                        let e = (got[t * rows + r] as f64 - want).abs();
                        assert!(e < 1e-4 * (1.0 + want.abs()), "{} {rows}×{cols} n={n} [{t},{r}]: {} vs {want}", ty.name(), got[t * rows + r]);
                    }
                }
            }
        }
    }
}
