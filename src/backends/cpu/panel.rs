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
        /// SAFETY: `p .. p + 4` writable.
        #[inline(always)]
        pub unsafe fn store(self, p: *mut f32) {
            v128_store(p as *mut v128, self.0)
        }
        /// Rows a..d → columns: result[c] = [a[c], b[c], c[c], d[c]] (eight lane shuffles).
        #[inline(always)]
        pub fn transpose(r: [F4; 4]) -> [F4; 4] {
            let t0 = i32x4_shuffle::<0, 4, 1, 5>(r[0].0, r[1].0);
            let t1 = i32x4_shuffle::<0, 4, 1, 5>(r[2].0, r[3].0);
            let t2 = i32x4_shuffle::<2, 6, 3, 7>(r[0].0, r[1].0);
            let t3 = i32x4_shuffle::<2, 6, 3, 7>(r[2].0, r[3].0);
            [F4(i32x4_shuffle::<0, 1, 4, 5>(t0, t1)), F4(i32x4_shuffle::<2, 3, 6, 7>(t0, t1)), F4(i32x4_shuffle::<0, 1, 4, 5>(t2, t3)), F4(i32x4_shuffle::<2, 3, 6, 7>(t2, t3))]
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
        /// SAFETY: `p .. p + 4` writable.
        pub unsafe fn store(self, p: *mut f32) {
            for (i, v) in self.0.iter().enumerate() {
                *p.add(i) = *v;
            }
        }
        pub fn transpose(r: [F4; 4]) -> [F4; 4] {
            std::array::from_fn(|c| F4(std::array::from_fn(|i| r[i].0[c])))
        }
    }
}

use lanes::F4;

/// Rows `r0 .. r0 + nr` (nr ≤ 8) of `w` as one panel: `panel[k · 8 + j] = w[r0 + j, k]`, zeros
/// for j ≥ nr. The rows are dequantized side by side into `rows` (8 × cols), then turned into
/// columns four by four with lane shuffles. rows: (8, cols); panel: (cols, 8).
pub fn pack_panel(w: &QTensor, r0: usize, nr: usize, rows: &mut [f32], panel: &mut [f32]) {
    let cols = w.cols;
    assert!(nr <= PANEL && rows.len() == cols * PANEL && panel.len() == cols * PANEL);
    w.dequantize_rows(r0, nr, &mut rows[..nr * cols]);
    rows[nr * cols..].fill(0.0);
    let k4 = cols - cols % 4;
    for k in (0..k4).step_by(4) {
        for h in 0..PANEL / 4 {
            // SAFETY: rows 4h .. 4h + 4 at columns k .. k + 4 < cols, inside `rows` (asserted);
            // the stores write panel[(k + c) · 8 + 4h ..][..4] with k + c < cols.
            unsafe {
                let r: [F4; 4] = std::array::from_fn(|i| F4::load(rows.as_ptr().add((4 * h + i) * cols + k)));
                for (c, v) in F4::transpose(r).into_iter().enumerate() {
                    v.store(panel.as_mut_ptr().add((k + c) * PANEL + 4 * h));
                }
            }
        }
    }
    for k in k4..cols {
        for j in 0..PANEL {
            panel[k * PANEL + j] = rows[j * cols + k];
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
/// `x` (T ≤ TOKENS) and j < nr. x: (*, xs) with cols ≤ xs; panel: (cols, 8).
#[inline(always)]
fn tile<const T: usize>(x: &[f32], xs: usize, t0: usize, cols: usize, panel: &[f32], d: &mut Dest) {
    assert!(cols <= xs && (t0 + T - 1) * xs + cols <= x.len() && panel.len() >= cols * PANEL);
    let mut acc = [[F4::zero(); VECS]; T];
    let xp = x[t0 * xs..].as_ptr();
    let pp = panel.as_ptr();
    for k in 0..cols {
        // SAFETY: k < cols; the panel holds cols · PANEL floats and x rows t0 .. t0 + T (asserted).
        unsafe {
            let b: [F4; VECS] = std::array::from_fn(|v| F4::load(pp.add(k * PANEL + 4 * v)));
            for (i, a) in acc.iter_mut().enumerate() {
                let xv = F4::splat_load(xp.add(i * xs + k));
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

/// `out[t, c0 .. c0 + nr] = x[t, :cols] · panelᵀ` for every token t < n, TOKENS at a time.
/// x: (n, xs), xs ≥ cols (a row stride wider than the product, as for one head of q).
pub fn panel_matmul(x: &[f32], xs: usize, n: usize, cols: usize, panel: &[f32], d: &mut Dest) {
    let mut t0 = 0;
    while t0 + TOKENS <= n {
        tile::<TOKENS>(x, xs, t0, cols, panel, d);
        t0 += TOKENS;
    }
    match n - t0 {
        0 => {}
        1 => tile::<1>(x, xs, t0, cols, panel, d),
        2 => tile::<2>(x, xs, t0, cols, panel, d),
        3 => tile::<3>(x, xs, t0, cols, panel, d),
        r => unreachable!("{r} ≥ TOKENS"),
    }
}

/// `out = x · wᵀ` with x (n, cols), w (rows, cols) quantized, out (n, rows): one panel of 8
/// weight rows dequantized at a time (16 · cols floats of scratch: the rows and the panel).
pub fn matmul_qt(x: &[f32], n: usize, w: &QTensor, out: &mut [f32]) {
    matmul_rows(x, n, w, 0, w.rows, out);
}

/// `out = x · w[r0 .. r0 + nr]ᵀ`: the products with a range of w's rows only, out (n, nr).
pub fn matmul_rows(x: &[f32], n: usize, w: &QTensor, r0: usize, nr: usize, out: &mut [f32]) {
    let cols = w.cols;
    assert_eq!(x.len(), n * cols, "matmul_qt: x has {} values, expected {n} × {cols}", x.len());
    assert!(r0 + nr <= w.rows && out.len() == n * nr);
    let (mut rows8, mut panel) = (vec![0.0; cols * PANEL], vec![0.0; cols * PANEL]);
    for j0 in (0..nr).step_by(PANEL) {
        let np = PANEL.min(nr - j0);
        pack_panel(w, r0 + j0, np, &mut rows8, &mut panel);
        panel_matmul(x, cols, n, cols, &panel, &mut Dest { out: &mut *out, stride: nr, c0: j0, nr: np });
    }
}

/// `c = a · bᵀ` for plain f32 operands with row strides, as attention's QKᵀ needs:
/// a (m, ≥ k) stride `sa`, b (n, ≥ k) stride `sb`, c (m, n) stride `sc`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_abt(m: usize, k: usize, n: usize, a: &[f32], sa: usize, b: &[f32], sb: usize, c: &mut [f32], sc: usize) {
    let mut panel = vec![0.0; k * PANEL];
    for j0 in (0..n).step_by(PANEL) {
        let nr = PANEL.min(n - j0);
        panel.fill(0.0);
        for j in 0..nr {
            for (kk, v) in b[(j0 + j) * sb..(j0 + j) * sb + k].iter().enumerate() {
                panel[kk * PANEL + j] = *v;
            }
        }
        panel_matmul(a, sa, m, k, &panel, &mut Dest { out: &mut *c, stride: sc, c0: j0, nr });
    }
}

/// `c = a · b` for plain f32 operands with row strides, as attention's P·V needs:
/// a (m, ≥ k) stride `sa`, b (k, ≥ n) stride `sb`, c (m, ≥ n) stride `sc` (columns 0 .. n).
#[allow(clippy::too_many_arguments)]
pub fn gemm_ab(m: usize, k: usize, n: usize, a: &[f32], sa: usize, b: &[f32], sb: usize, c: &mut [f32], sc: usize) {
    let mut panel = vec![0.0; k * PANEL];
    for j0 in (0..n).step_by(PANEL) {
        let nr = PANEL.min(n - j0);
        for kk in 0..k {
            let row = &b[kk * sb + j0..kk * sb + j0 + nr];
            panel[kk * PANEL..kk * PANEL + nr].copy_from_slice(row);
            panel[kk * PANEL + nr..(kk + 1) * PANEL].fill(0.0);
        }
        panel_matmul(a, sa, m, k, &panel, &mut Dest { out: &mut *c, stride: sc, c0: j0, nr });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gguf::GgmlType;
    use crate::backends::cpu::ops::tests::values;
    use crate::model::quant::quantize;

    /// The strided f32 products attention uses, against a plain loop: odd sizes, strides wider
    /// than the rows, a panel short of 8 columns.
    #[test]
    fn strided_products_match_the_plain_loop() {
        for (m, k, n) in [(1, 1, 1), (5, 64, 13), (64, 7, 9), (3, 33, 8)] {
            let (sa, sb, sc) = (k + 3, k + 5, n + 2);
            let a = values(m * sa, 1);
            let bt = values(n * sb, 2); // (n, k) rows for a · bᵀ
            let mut c = vec![f32::NAN; m * sc];
            gemm_abt(m, k, n, &a, sa, &bt, sb, &mut c, sc);
            let sb2 = n + 4;
            let b = values(k * sb2, 3); // (k, n) rows for a · b
            let mut c2 = vec![f32::NAN; m * sc];
            gemm_ab(m, k, n, &a, sa, &b, sb2, &mut c2, sc);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|t| a[i * sa + t] as f64 * bt[j * sb + t] as f64).sum();
                    assert!((c[i * sc + j] as f64 - want).abs() < 1e-4, "abt {m}×{k}×{n} [{i},{j}]");
                    let want2: f64 = (0..k).map(|t| a[i * sa + t] as f64 * b[t * sb2 + j] as f64).sum();
                    assert!((c2[i * sc + j] as f64 - want2).abs() < 1e-4, "ab {m}×{k}×{n} [{i},{j}]");
                }
            }
        }
    }

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
                // A range of rows from an offset (the fused argmax's blocks): the same products.
                let (r0, nr) = (rows / 3, rows - rows / 3);
                let mut part = vec![f32::NAN; n * nr];
                matmul_rows(&x, n, &w, r0, nr, &mut part);
                for t in 0..n {
                    assert_eq!(&part[t * nr..(t + 1) * nr], &got[t * rows + r0..(t + 1) * rows], "{} rows {r0}.. n={n}", ty.name());
                }
            }
        }
    }
}
