//! CPU kernels, f32 throughout. Buffers are row-major slices; shapes are in the comments.
//! Each kernel has a plain scalar reference in `tests` below and a tolerance test.

use crate::model::arch::{Act, AttnShape, NormKind, RopeStyle};
use crate::model::gguf::GgmlType;
use crate::model::quant::{self, QTensor};

use super::parallel::{for_each_index, SyncPtr};

/// Weight rows dequantized per task: 64 rows × up to 1536 columns = 384 KiB of f32 scratch,
/// small enough to stay in L2 while the whole activation block streams past it.
pub const MATMUL_ROW_CHUNK: usize = 64;
/// Query rows per attention task: the score tile is (ATTN_QUERY_TILE, kv_len), never n × n.
pub const ATTN_QUERY_TILE: usize = 64;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out = x · wᵀ` with `x` (n, cols) and `w` (rows, cols) quantized: out is (n, rows).
///
/// Up to [`GEMV_MAX_TOKENS`] tokens (a decoding step), the fused [`gemv`] reads each row in
/// place. Otherwise rows of `w` are dequantized `MATMUL_ROW_CHUNK` at a time into a per-thread
/// scratch and multiplied with `matrixmultiply`'s sgemm; tasks own disjoint column blocks of
/// `out`. The wasm build (one thread, four lanes) runs [`super::panel::matmul_qt`] instead.
pub fn matmul_qt(x: &[f32], n: usize, w: &QTensor, out: &mut [f32]) {
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(x.len(), n * cols, "matmul_qt: x has {} values, expected {n} × {cols}", x.len());
    assert_eq!(out.len(), n * rows);
    let out_ptr = SyncPtr(out.as_mut_ptr());
    if gemv_takes(n, w.ty) {
        let sums = gemv::XSums::new(x, cols, w.ty);
        for_each_index(rows.div_ceil(GEMV_ROW_CHUNK), |c| {
            let r0 = c * GEMV_ROW_CHUNK;
            // SAFETY: columns r0 .. r0 + nr of out's n rows (stride `rows`) are this task's only.
            unsafe { gemv::rows(x, n, w, &sums, r0, GEMV_ROW_CHUNK.min(rows - r0), out_ptr.get().add(r0), rows) };
        });
        return;
    }
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        return super::panel::matmul_qt(x, n, w, out); // the browser's kernel (see panel.rs)
    }
    for_each_index(rows.div_ceil(MATMUL_ROW_CHUNK), |c| {
        let r0 = c * MATMUL_ROW_CHUNK;
        // SAFETY: the (n × nr) block of `out` at column r0 with row stride `rows` lies inside
        // `out`, and no other task writes columns r0 .. r0 + nr.
        unsafe { dequantized_product(x, n, w, r0, MATMUL_ROW_CHUNK.min(rows - r0), out_ptr.get().add(r0), rows) };
    });
}

/// `c = x · w[r0 .. r0 + nr]ᵀ` through this thread's scratch: the rows dequantized, then
/// matrixmultiply's sgemm. x: (n, w.cols); c: (n, nr) with row stride `ldc`.
/// SAFETY: `c` must be valid for writes of rows 0 .. n, columns 0 .. nr at stride `ldc`, and
/// not written by anyone else meanwhile.
unsafe fn dequantized_product(x: &[f32], n: usize, w: &QTensor, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
    let cols = w.cols;
    assert!(x.len() == n * cols && r0 + nr <= w.rows);
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < nr * cols {
            s.resize(nr * cols, 0.0);
        }
        let wc = &mut s[..nr * cols]; // (nr, cols)
        w.dequantize_rows(r0, nr, wc);
        // SAFETY: A = x (n × cols), B = wcᵀ (cols × nr), live slices of exactly those sizes;
        // C as the caller promises.
        unsafe { matrixmultiply::sgemm(n, cols, nr, 1.0, x.as_ptr(), cols as isize, 1, wc.as_ptr(), 1, cols as isize, 0.0, c, ldc as isize, 1) };
    });
}

/// For every row t of x (n, w.cols), the index of the largest value of `x[t] · wᵀ` (the lowest
/// index on ties; NaN never wins), as f32 in out (n): every position's most likely next token
/// without the (n, vocab) logits, and with the output matrix dequantized once. (Chunks of
/// tokens through [`matmul_qt`] would dequantize its 49k–262k rows once per chunk: a fifth of
/// the browser worker's matmul time on a 240-token text.)
///
/// Each thread takes a contiguous range of w's rows, [`MATMUL_ROW_CHUNK`] at a time, with a
/// running best per token; the ranges are then merged in row order, which keeps the lowest index.
/// Scratch: n · MATMUL_ROW_CHUNK products and two (threads, n) running bests.
pub fn matmul_argmax(x: &[f32], n: usize, w: &QTensor, out: &mut [f32]) {
    assert_eq!(x.len(), n * w.cols, "matmul_argmax: x has {} values, expected {n} × {}", x.len(), w.cols);
    assert_eq!(out.len(), n);
    let blocks = w.rows.div_ceil(MATMUL_ROW_CHUNK);
    let parts = super::parallel::threads().clamp(1, blocks.max(1));
    let per = blocks.div_ceil(parts) * MATMUL_ROW_CHUNK; // rows per part
    let (mut best, mut index) = (vec![f32::NEG_INFINITY; parts * n], vec![0.0f32; parts * n]); // (parts, n) each
    let (best_ptr, index_ptr) = (SyncPtr(best.as_mut_ptr()), SyncPtr(index.as_mut_ptr()));
    let sums = gemv_takes(n, w.ty).then(|| gemv::XSums::new(x, w.cols, w.ty));
    for_each_index(parts, |part| {
        // SAFETY: row `part` of `best` and `index` (n values each) belongs to this task only.
        let (best, index) = unsafe { (std::slice::from_raw_parts_mut(best_ptr.get().add(part * n), n), std::slice::from_raw_parts_mut(index_ptr.get().add(part * n), n)) };
        let mut prod = vec![0.0; n * MATMUL_ROW_CHUNK]; // (n, nr)
        for r0 in (part * per..w.rows.min((part + 1) * per)).step_by(MATMUL_ROW_CHUNK) {
            let nr = MATMUL_ROW_CHUNK.min(w.rows - r0);
            let prod = &mut prod[..n * nr];
            matmul_rows(x, n, w, sums.as_ref(), r0, nr, prod);
            for (t, row) in prod.chunks_exact(nr).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    if v > best[t] {
                        (best[t], index[t]) = (v, (r0 + j) as f32);
                    }
                }
            }
        }
    });
    for (t, o) in out.iter_mut().enumerate() {
        let winner = (0..parts).fold(0, |b, p| if best[p * n + t] > best[b * n + t] { p } else { b });
        *o = index[winner * n + t];
    }
}

/// `out = x · w[r0 .. r0 + nr]ᵀ`, out (n, nr): one block of weight rows, through the fused
/// [`gemv`] when `sums` are given (a few tokens), else dequantized into this thread's scratch
/// (the browser: the panel kernel).
fn matmul_rows(x: &[f32], n: usize, w: &QTensor, sums: Option<&gemv::XSums>, r0: usize, nr: usize, out: &mut [f32]) {
    assert_eq!(out.len(), n * nr);
    if let Some(sums) = sums {
        // SAFETY: out is exactly (n, nr), borrowed mutably here.
        return unsafe { gemv::rows(x, n, w, sums, r0, nr, out.as_mut_ptr(), nr) };
    }
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        return super::panel::matmul_rows(x, n, w, r0, nr, out);
    }
    // SAFETY: out is exactly (n, nr), borrowed mutably here.
    unsafe { dequantized_product(x, n, w, r0, nr, out.as_mut_ptr(), nr) }
}

/// Most tokens [`matmul_qt`] and [`matmul_argmax`] send through the fused [`gemv`] instead of
/// dequantize-then-multiply: one decoding step is n = 1.
pub const GEMV_MAX_TOKENS: usize = 3;

/// Weight rows per [`gemv`] task: small, so that even a (192, 576) projection splits evenly
/// between threads (nothing is dequantized, so no scratch to fill per task).
pub const GEMV_ROW_CHUNK: usize = 16;

/// Whether [`gemv`] reads this weight type in place (BF16 goes the dequantizing way).
pub fn gemv_fuses(ty: GgmlType) -> bool {
    quant::has_groups(ty) || matches!(ty, GgmlType::F32 | GgmlType::F16)
}

/// Whether n tokens times weights of type `ty` go through [`gemv`].
fn gemv_takes(n: usize, ty: GgmlType) -> bool {
    (1..=GEMV_MAX_TOKENS).contains(&n) && gemv_fuses(ty)
}

/// Fused dequantize-and-dot for a few tokens (n ≤ [`GEMV_MAX_TOKENS`]): each weight row is read
/// once, in its encoding, and dotted with every token of x; nothing dequantized is stored.
///
/// Block formats come as [`quant::Group`]s: 32 integer codes packed in four `u64`, widened
/// straight into float lanes, and `scale · Σ x·code + offset · Σ x` per half, with `Σ x` per 16
/// activations computed once per call ([`XSums`]). F32 and F16 rows are plain dot products.
/// The lanes are eight floats: AVX2 + FMA (+ F16C) where the CPU has them (checked at run time),
/// two SIMD128 vectors in the browser, a plain array elsewhere.
#[allow(clippy::too_many_arguments)]
pub mod gemv {
    use super::*;

    /// `Σ x` over every 16 and every 32 activations of each token: (n, cols / 16) and
    /// (n, cols / 32). Empty for F32 and F16 weights, which need none.
    /// In the browser, also x in fixed point for [`fixed`]'s formats.
    pub struct XSums {
        x16: Vec<f32>,
        x32: Vec<f32>,
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        split: Option<fixed::Split>,
    }

    impl XSums {
        pub fn new(x: &[f32], cols: usize, ty: GgmlType) -> XSums {
            let (x16, x32) = if quant::has_groups(ty) {
                let x16: Vec<f32> = x.chunks_exact(16).map(|c| c.iter().sum()).collect();
                let x32 = x16.chunks_exact(2).map(|p| p[0] + p[1]).collect();
                debug_assert_eq!(x16.len(), x.len() / cols * cols / 16);
                (x16, x32)
            } else {
                (Vec::new(), Vec::new())
            };
            XSums {
                x16,
                x32,
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                split: fixed::takes(ty).then(|| fixed::Split::new(x)),
            }
        }
    }

    /// How far ahead of the row being read [`rows`] asks for the weights (bytes): measured
    /// 1, 2 and 4 KiB on SmolLM2's matrices, 2 KiB best.
    const PREFETCH_AHEAD: usize = 2048;

    /// `c[t · ldc + j] = x[t] · w[r0 + j]` for tokens t < n (1 ≤ n ≤ [`GEMV_MAX_TOKENS`]) and
    /// rows j < nr. x: (n, w.cols); `sums` from [`XSums::new`] of this x and w's type.
    ///
    /// # Safety
    /// `c` valid for writes at those places, and not written by anyone else meanwhile.
    pub unsafe fn rows(x: &[f32], n: usize, w: &QTensor, sums: &XSums, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
        check(x, n, w, sums, r0, nr);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
            // SAFETY: the CPU has the features; the rest as the caller promises.
            return unsafe { rows_avx2(x, n, w, sums, r0, nr, c, ldc) };
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if let Some(split) = &sums.split {
            // SAFETY: as the caller promises; `split` is this x's (made for this type).
            return unsafe { fixed::rows::<fixed::Simd128>(n, w, sums, split, r0, nr, c, ldc) };
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return unsafe { rows_with::<lanes::Simd128>(x, n, w, sums, r0, nr, c, ldc) };
        #[allow(unreachable_code)]
        // SAFETY: as the caller promises.
        unsafe {
            rows_with::<lanes::Plain>(x, n, w, sums, r0, nr, c, ldc)
        }
    }

    /// [`rows`] on plain lanes whatever the CPU (tests: the portable path, checked natively).
    ///
    /// # Safety
    /// As for [`rows`].
    #[cfg(test)]
    pub unsafe fn rows_plain(x: &[f32], n: usize, w: &QTensor, sums: &XSums, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
        check(x, n, w, sums, r0, nr);
        unsafe { rows_with::<lanes::Plain>(x, n, w, sums, r0, nr, c, ldc) }
    }

    /// [`fixed::rows`] on plain lanes whatever the target (tests: the browser's formats and
    /// fixed-point split, checked natively).
    ///
    /// # Safety
    /// As for [`rows`].
    #[cfg(test)]
    pub unsafe fn rows_fixed_plain(x: &[f32], n: usize, w: &QTensor, sums: &XSums, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
        check(x, n, w, sums, r0, nr);
        unsafe { fixed::rows::<fixed::Plain>(n, w, sums, &fixed::Split::new(x), r0, nr, c, ldc) }
    }

    fn check(x: &[f32], n: usize, w: &QTensor, sums: &XSums, r0: usize, nr: usize) {
        assert!((1..=GEMV_MAX_TOKENS).contains(&n) && gemv_fuses(w.ty), "gemv: {} tokens of {}", n, w.ty.name());
        assert!(x.len() == n * w.cols && r0 + nr <= w.rows);
        if quant::has_groups(w.ty) {
            assert!(sums.x16.len() == n * w.cols / 16 && sums.x32.len() == n * w.cols / 32);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows_avx2(x: &[f32], n: usize, w: &QTensor, sums: &XSums, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
        unsafe { rows_with::<lanes::Avx2>(x, n, w, sums, r0, nr, c, ldc) }
    }

    #[inline(always)]
    unsafe fn rows_with<L: lanes::Lanes>(x: &[f32], n: usize, w: &QTensor, sums: &XSums, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
        unsafe {
            match n {
                1 => rows_n::<L, 1>(x, w, sums, r0, nr, c, ldc),
                2 => rows_n::<L, 2>(x, w, sums, r0, nr, c, ldc),
                3 => rows_n::<L, 3>(x, w, sums, r0, nr, c, ldc),
                _ => unreachable!("checked"),
            }
        }
    }

    #[inline(always)]
    unsafe fn rows_n<L: lanes::Lanes, const T: usize>(x: &[f32], w: &QTensor, sums: &XSums, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
        let (rb, data) = (w.row_bytes(), w.data());
        for j in 0..nr {
            let row = &data[(r0 + j) * rb..(r0 + j + 1) * rb];
            // The bytes PREFETCH_AHEAD further on, a row's length of them, a cache line at a
            // time: the weights stream from memory once per token, and the hardware prefetcher
            // alone keeps too few lines in flight (natively, SmolLM2's Q4_1 projections went
            // 1.8× faster with this).
            for off in (0..rb).step_by(64) {
                L::prefetch(data, (r0 + j) * rb + PREFETCH_AHEAD + off);
            }
            let dots: [f32; T] = match w.ty {
                GgmlType::F32 => dense::<L, T>(x, w.cols, row, 4, #[inline(always)] |p| unsafe { L::load(p as *const f32) }, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                GgmlType::F16 => dense::<L, T>(x, w.cols, row, 2, #[inline(always)] |p| unsafe { L::load_f16(p as *const u16) }, |b| quant::f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
                ty => grouped::<L, T>(ty, x, w.cols, row, sums),
            };
            for (t, d) in dots.into_iter().enumerate() {
                // SAFETY: t < n, j < nr: as the caller promises.
                unsafe { *c.add(t * ldc + j) = d };
            }
        }
    }

    /// Dot products of one row of plain values (`size` bytes each) with the T tokens, 32
    /// columns per step (`eight` reads 8 values at a pointer), the last cols % 32 one by one.
    #[inline(always)]
    fn dense<L: lanes::Lanes, const T: usize>(x: &[f32], cols: usize, row: &[u8], size: usize, eight: impl Fn(*const u8) -> L, one: impl Fn(&[u8]) -> f32) -> [f32; T] {
        assert!(x.len() >= T * cols && row.len() == cols * size);
        let mut acc = [L::zero(); T];
        let steps = cols / 32;
        for s in 0..steps {
            let wp = row[32 * s * size..].as_ptr();
            let wv: [L; 4] = std::array::from_fn(|i| eight(wp.wrapping_add(8 * i * size)));
            for (t, a) in acc.iter_mut().enumerate() {
                // SAFETY: columns 32s .. 32s + 32 ≤ cols of token t < T (asserted).
                let xp = unsafe { x.as_ptr().add(t * cols + 32 * s) };
                let p = unsafe { dot4(wv, xp) };
                *a = a.add(p);
            }
        }
        std::array::from_fn(|t| {
            let tail: f32 = (32 * steps..cols).map(|k| x[t * cols + k] * one(&row[k * size..])).sum();
            acc[t].sum() + tail
        })
    }

    /// `Σ_{i<4} v[i] · x[8i .. 8i + 8]` lane-wise: a multiply and three multiply-adds (the
    /// chain is long, but each group's is independent of the last one's).
    /// SAFETY: `xp .. xp + 32` readable.
    #[inline(always)]
    unsafe fn dot4<L: lanes::Lanes>(v: [L; 4], xp: *const f32) -> L {
        unsafe {
            let a = v[1].mul_add(L::load(xp.add(8)), v[0].mul(L::load(xp)));
            v[3].mul_add(L::load(xp.add(24)), v[2].mul_add(L::load(xp.add(16)), a))
        }
    }

    /// Dot products of one block-quantized row with the T tokens, a group of 32 at a time.
    #[inline(always)]
    fn grouped<L: lanes::Lanes, const T: usize>(ty: GgmlType, x: &[f32], cols: usize, row: &[u8], sums: &XSums) -> [f32; T] {
        let groups = cols / 32;
        assert!(x.len() >= T * cols && sums.x32.len() >= T * groups && sums.x16.len() >= 2 * T * groups);
        let mut dots = Dots::<L, T> { x: x.as_ptr(), cols, groups, sums, k: 0, acc: [[L::zero(); 2]; T], off: [0.0; T] };
        quant::for_each_group(ty, row, L::halves, &mut dots);
        assert_eq!(dots.k, groups);
        std::array::from_fn(|t| dots.acc[t][0].add(dots.acc[t][1]).sum() + dots.off[t])
    }

    /// The running dot products of [`grouped`]: two accumulators per token (one per half of a
    /// group), and the offsets' scalar sums.
    struct Dots<'a, L, const T: usize> {
        x: *const f32,
        cols: usize,
        groups: usize,
        sums: &'a XSums,
        /// The next group's index.
        k: usize,
        acc: [[L; 2]; T],
        off: [f32; T],
    }

    impl<L: lanes::Lanes, const T: usize> quant::GroupSink<L::I> for Dots<'_, L, T> {
        #[inline(always)]
        fn group<const HALVES: bool, const OFFSET: bool>(&mut self, codes: [L::I; 4], scale: [f32; 2], offset: [f32; 2]) {
            let (k, groups) = (self.k, self.groups);
            assert!(k < groups); // once per group: keeps the unchecked reads below in bounds
            let q = codes.map(L::convert);
            for t in 0..T {
                // SAFETY: group k < cols / 32 of token t < T (`grouped` checked x and the sums).
                unsafe {
                    let xp = self.x.add(t * self.cols + 32 * k);
                    if HALVES {
                        let a = q[1].mul_add(L::load(xp.add(8)), q[0].mul(L::load(xp)));
                        let b = q[3].mul_add(L::load(xp.add(24)), q[2].mul(L::load(xp.add(16))));
                        self.acc[t][0] = L::splat(scale[0]).mul_add(a, self.acc[t][0]);
                        self.acc[t][1] = L::splat(scale[1]).mul_add(b, self.acc[t][1]);
                        if OFFSET {
                            let s = self.sums.x16.as_ptr().add(t * 2 * groups + 2 * k);
                            self.off[t] += offset[0] * *s + offset[1] * *s.add(1);
                        }
                    } else {
                        self.acc[t][0] = L::splat(scale[0]).mul_add(dot4(q, xp), self.acc[t][0]);
                        if OFFSET {
                            self.off[t] += offset[0] * *self.sums.x32.as_ptr().add(t * groups + k);
                        }
                    }
                }
            }
            self.k = k + 1;
        }
    }

    /// The browser's gemv for the 4-bit formats (Q4_0, Q4_1, Q4_K): integer dot products on
    /// exact activations.
    ///
    /// WebAssembly has four float lanes and no half-precision conversion, so widening every
    /// 4-bit code to a float (what [`rows`] does) costs more than the multiply-add itself. Here
    /// each group of 32 activations becomes fixed point instead — `x = 2^e · (2^15 · hi + lo)`
    /// with `hi`, `lo` 16-bit integers and `2^e` chosen so the group's largest value needs 29
    /// bits — and the codes stay 16-bit integers: `i32x4.dot_i16x8_s` does eight
    /// multiply-adds, exactly, per instruction. The split's rounding is at most
    /// `2^-29 · max|x|` of the group, 32× finer than f32's own rounding of that value, so the
    /// results keep f32 accuracy (this is not llama.cpp's 8-bit rounding of activations). A
    /// group holding an infinity or NaN gives NaN.
    ///
    /// The codes are taken from each block as 16-bit lanes of byte pairs (no widening): lane i
    /// of 16 bytes holds elements 2i and 2i + 1. So each group's activations are stored in the
    /// same order: `[even of 0..16, odd of 0..16, even of 16..32, odd of 16..32]`.
    ///
    /// Measured in headless Chromium (SmolLM2's matrices, one token): the Q4_1 projections
    /// 12.4 → 10.6 ms (1536 × 576, ×60), 4.5 → 3.7 (576 × 576, ×60); Q8_0 went the other way
    /// (6.3 → 7.2 for the 49152 × 576 output matrix), so it stays on the float lanes. Two rows
    /// at a time share each token's loads (one row alone: 20 % slower under node).
    pub mod fixed {
        use super::*;

        /// Whether [`rows`] reads this type.
        pub fn takes(ty: GgmlType) -> bool {
            matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K)
        }

        /// The element of a group stored at each place (see the module's notes).
        const ELEMENT: [u8; 32] = {
            let mut e = [0u8; 32];
            let mut p = 0;
            while p < 32 {
                let (v, i) = (p / 8, p % 8);
                e[p] = (16 * (v / 2) + 2 * i + v % 2) as u8;
                p += 1;
            }
            e
        };

        /// Activations of n tokens in fixed point, per group of 32: `hi`, `lo` (n, cols) in
        /// the stored order, `p2` (n, cols / 32) the groups' `2^e`.
        pub struct Split {
            hi: Vec<i16>,
            lo: Vec<i16>,
            p2: Vec<f32>,
        }

        impl Split {
            pub fn new(x: &[f32]) -> Split {
                assert!(x.len() % 32 == 0);
                let mut s = Split { hi: vec![0; x.len()], lo: vec![0; x.len()], p2: vec![0.0; x.len() / 32] };
                for (k, g) in x.chunks_exact(32).enumerate() {
                    let amax = g.iter().fold(0.0f32, |a, v| if v.is_finite() { a.max(v.abs()) } else { f32::INFINITY });
                    if !amax.is_finite() {
                        s.p2[k] = f32::NAN;
                        continue;
                    }
                    if amax == 0.0 {
                        continue;
                    }
                    // amax / 2^e in [2^28, 2^29): every |x| / 2^e rounds to at most 2^29, so
                    // hi = v >> 15 fits in 15 bits and the dot products in i32 (see `dot`).
                    let e = ((amax as f64).to_bits() >> 52) as i32 - 1023 - 28;
                    s.p2[k] = f64::from_bits(((1023 + e) as u64) << 52) as f32;
                    let (hi, lo) = (&mut s.hi[32 * k..32 * k + 32], &mut s.lo[32 * k..32 * k + 32]);
                    let mut put = |p: usize, v: i32| {
                        hi[p] = (v >> 15) as i16;
                        lo[p] = (v & 0x7fff) as i16;
                    };
                    // x · 2^-e is exact in f32 (a power of two) while 2^-e is a normal f32: every
                    // group but those below 2^-99. Rounding half to even is one instruction.
                    if e > -127 {
                        let inv = f32::from_bits(((127 - e) as u32) << 23);
                        for (p, &at) in ELEMENT.iter().enumerate() {
                            put(p, (g[at as usize] * inv).round_ties_even() as i32);
                        }
                    } else {
                        let inv = f64::from_bits(((1023 - e) as u64) << 52);
                        for (p, &at) in ELEMENT.iter().enumerate() {
                            put(p, (g[at as usize] as f64 * inv).round_ties_even() as i32);
                        }
                    }
                }
                s
            }
        }

        /// Eight 16-bit lanes, and the float accumulator of one token's dot product.
        pub trait Fixed: Copy {
            type Acc: Copy;
            fn zero() -> Self::Acc;
            /// 16 bytes as eight little-endian 16-bit lanes.
            ///
            /// # Safety
            /// `p .. p + 16` readable.
            unsafe fn load(p: *const u8) -> Self;
            fn and(self, mask: u16) -> Self;
            /// Logical shift right.
            fn shr(self, n: u32) -> Self;
            /// `acc + scale · Σ codes · (2^15 · hi + lo)` over the 32 lanes, with hi and lo the
            /// 32 16-bit values at `hp` and `lp` (loaded where they are used: fewer live
            /// registers).
            ///
            /// # Safety
            /// `hp .. hp + 64` and `lp .. lp + 64` readable.
            unsafe fn dot(acc: Self::Acc, codes: [Self; 4], hp: *const u8, lp: *const u8, scale: f32) -> Self::Acc;
            fn sum(acc: Self::Acc) -> f32;
            /// The two halves at `p` (a block's scale and offset), widened.
            ///
            /// # Safety
            /// `p .. p + 4` readable.
            #[inline(always)]
            unsafe fn two_halves(p: *const u8) -> (f32, f32) {
                let b = unsafe { p.cast::<[u8; 4]>().read_unaligned() };
                (quant::f16_to_f32(u16::from_le_bytes([b[0], b[1]])), quant::f16_to_f32(u16::from_le_bytes([b[2], b[3]])))
            }
        }

        /// `c[t · ldc + j] = x[t] · w[r0 + j]`, as [`super::rows`], for `fixed::takes(w.ty)`;
        /// `split` from [`Split::new`] of that x.
        ///
        /// # Safety
        /// As for [`super::rows`].
        #[allow(clippy::too_many_arguments)]
        #[inline(always)]
        pub unsafe fn rows<F: Fixed>(n: usize, w: &QTensor, sums: &XSums, split: &Split, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
            assert!(takes(w.ty) && (1..=GEMV_MAX_TOKENS).contains(&n) && r0 + nr <= w.rows);
            assert!(split.hi.len() == n * w.cols && sums.x32.len() == n * w.cols / 32);
            unsafe {
                match n {
                    1 => rows_n::<F, 1>(w, sums, split, r0, nr, c, ldc),
                    2 => rows_n::<F, 2>(w, sums, split, r0, nr, c, ldc),
                    _ => rows_n::<F, 3>(w, sums, split, r0, nr, c, ldc),
                }
            }
        }

        /// The formats, as constants of each kernel's loop.
        const Q4_0: u8 = 0;
        const Q4_1: u8 = 1;
        const Q4_K: u8 = 2;

        #[inline(always)]
        unsafe fn rows_n<F: Fixed, const T: usize>(w: &QTensor, sums: &XSums, split: &Split, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
            unsafe {
                match w.ty {
                    GgmlType::Q4_0 => rows_fmt::<F, T, Q4_0>(w, sums, split, r0, nr, c, ldc),
                    GgmlType::Q4_1 => rows_fmt::<F, T, Q4_1>(w, sums, split, r0, nr, c, ldc),
                    GgmlType::Q4K => rows_fmt::<F, T, Q4_K>(w, sums, split, r0, nr, c, ldc),
                    other => unreachable!("fixed::rows: {}", other.name()),
                }
            }
        }

        /// Two rows at a time (each token's activations are loaded once for both), the last
        /// one alone when nr is odd.
        #[inline(always)]
        unsafe fn rows_fmt<F: Fixed, const T: usize, const FMT: u8>(w: &QTensor, sums: &XSums, split: &Split, r0: usize, nr: usize, c: *mut f32, ldc: usize) {
            let mut j = 0;
            while j < nr {
                let r = if nr - j >= 2 { 2 } else { 1 };
                let mut out = [[0.0f32; T]; 2];
                unsafe {
                    if r == 2 {
                        out = row_block::<F, T, FMT, 2>(w, sums, split, r0 + j);
                    } else {
                        out[0] = row_block::<F, T, FMT, 1>(w, sums, split, r0 + j)[0];
                    }
                }
                for (i, o) in out.iter().enumerate().take(r) {
                    for (t, v) in o.iter().enumerate() {
                        // SAFETY: t < n, j + i < nr: as the caller promises.
                        unsafe { *c.add(t * ldc + j + i) = *v };
                    }
                }
                j += r;
            }
        }

        /// Group k of an encoded row: its 32 codes (in the stored order), scale and offset
        /// (element e is `scale · code(e) + offset`).
        ///
        /// # Safety
        /// `k` < the row's groups (the row a whole number of blocks of the format).
        #[inline(always)]
        unsafe fn group<F: Fixed, const FMT: u8>(row: &[u8], k: usize) -> ([F; 4], f32, f32) {
            let half = |at: usize| quant::f16_to_f32(u16::from_le_bytes(unsafe { [*row.get_unchecked(at), *row.get_unchecked(at + 1)] }));
            let p = row.as_ptr();
            // SAFETY (each load): 16 bytes inside block k, as the caller promises.
            unsafe {
                match FMT {
                    Q4_0 => {
                        let (d, u) = (half(18 * k), F::load(p.add(18 * k + 2)));
                        ([u.and(15), u.shr(8).and(15), u.shr(4).and(15), u.shr(12)], d, -8.0 * d)
                    }
                    Q4_1 => {
                        let u = F::load(p.add(20 * k + 4));
                        let (d, m) = F::two_halves(p.add(20 * k));
                        ([u.and(15), u.shr(8).and(15), u.shr(4).and(15), u.shr(12)], d, m)
                    }
                    _ => {
                        // Q4_K: 8 groups per 144-byte block; 32 bytes per 64 elements, the low
                        // nibbles sub-block 2c, the high ones 2c + 1.
                        let (b, sub) = (144 * (k / 8), k % 8);
                        let q = b + 16 + 32 * (sub / 2);
                        let (u, v) = (F::load(p.add(q)), F::load(p.add(q + 16)));
                        let (sc, m) = quant::k4_scale_min(sub, row.get_unchecked(b + 4..b + 16));
                        let (d, dmin) = F::two_halves(p.add(b));
                        let codes = if sub % 2 == 0 { [u.and(15), u.shr(8).and(15), v.and(15), v.shr(8).and(15)] } else { [u.shr(4).and(15), u.shr(12), v.shr(4).and(15), v.shr(12)] };
                        (codes, d * sc as f32, -(dmin * m as f32))
                    }
                }
            }
        }

        /// Rows `r .. r + R` dotted with the T tokens. Not inlined: V8 allocates registers per
        /// function, and this loop alone spills far less than inside the whole dispatch.
        #[inline(never)]
        unsafe fn row_block<F: Fixed, const T: usize, const FMT: u8, const R: usize>(w: &QTensor, sums: &XSums, split: &Split, r: usize) -> [[f32; T]; R] {
            let (rb, data, groups) = (w.row_bytes(), w.data(), w.cols / 32);
            assert!(r + R <= w.rows && split.hi.len() >= T * w.cols && split.p2.len() >= T * groups && sums.x32.len() >= T * groups);
            let rows: [&[u8]; R] = std::array::from_fn(|i| &data[(r + i) * rb..(r + i + 1) * rb]);
            let mut acc = [[F::zero(); T]; R];
            let mut off = [[0.0f32; T]; R];
            for k in 0..groups {
                // SAFETY: k < groups (the rows are whole blocks: QTensor checked its size).
                let g: [([F; 4], f32, f32); R] = std::array::from_fn(|i| unsafe { group::<F, FMT>(rows[i], k) });
                for t in 0..T {
                    // SAFETY: group k < groups of token t < T, in hi, lo, p2 and x32 (asserted).
                    unsafe {
                        let at = (t * groups + k) * 32;
                        let (hp, lp) = (split.hi.as_ptr().add(at) as *const u8, split.lo.as_ptr().add(at) as *const u8);
                        let (p2, x32) = (*split.p2.get_unchecked(t * groups + k), *sums.x32.get_unchecked(t * groups + k));
                        for i in 0..R {
                            acc[i][t] = F::dot(acc[i][t], g[i].0, hp, lp, g[i].1 * p2);
                            off[i][t] += g[i].2 * x32;
                        }
                    }
                }
            }
            std::array::from_fn(|i| std::array::from_fn(|t| F::sum(acc[i][t]) + off[i][t]))
        }

        /// Plain lanes: the portable path, and the tests' check of the format decoding natively.
        #[derive(Clone, Copy)]
        pub struct Plain([u16; 8]);
        impl Fixed for Plain {
            type Acc = f64;
            #[inline(always)]
            fn zero() -> f64 {
                0.0
            }
            #[inline(always)]
            unsafe fn load(p: *const u8) -> Self {
                let b = unsafe { p.cast::<[u8; 16]>().read_unaligned() };
                Plain(std::array::from_fn(|i| u16::from_le_bytes([b[2 * i], b[2 * i + 1]])))
            }
            #[inline(always)]
            fn and(self, mask: u16) -> Self {
                Plain(self.0.map(|v| v & mask))
            }
            #[inline(always)]
            fn shr(self, n: u32) -> Self {
                Plain(self.0.map(|v| v >> n))
            }
            #[inline(always)]
            unsafe fn dot(acc: f64, codes: [Self; 4], hp: *const u8, lp: *const u8, scale: f32) -> f64 {
                let (hi, lo): ([Self; 4], [Self; 4]) = unsafe { (std::array::from_fn(|v| Self::load(hp.add(16 * v))), std::array::from_fn(|v| Self::load(lp.add(16 * v)))) };
                let (mut h, mut l) = (0i64, 0i64);
                for v in 0..4 {
                    for i in 0..8 {
                        let c = codes[v].0[i] as i16 as i64;
                        h += c * hi[v].0[i] as i16 as i64;
                        l += c * lo[v].0[i] as i16 as i64;
                    }
                }
                acc + scale as f64 * (h as f64 * 32768.0 + l as f64)
            }
            #[inline(always)]
            fn sum(acc: f64) -> f32 {
                acc as f32
            }
        }

        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        pub use simd128::Simd128;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        mod simd128 {
            use super::Fixed;
            use core::arch::wasm32::*;

            /// One SIMD128 vector of eight 16-bit lanes; the accumulator is four float lanes.
            #[derive(Clone, Copy)]
            pub struct Simd128(v128);
            impl Fixed for Simd128 {
                type Acc = v128;
                #[inline(always)]
                fn zero() -> v128 {
                    f32x4_splat(0.0)
                }
                #[inline(always)]
                unsafe fn load(p: *const u8) -> Self {
                    Simd128(unsafe { v128_load(p as *const v128) })
                }
                #[inline(always)]
                fn and(self, mask: u16) -> Self {
                    Simd128(v128_and(self.0, u16x8_splat(mask)))
                }
                #[inline(always)]
                fn shr(self, n: u32) -> Self {
                    Simd128(u16x8_shr(self.0, n))
                }
                /// Eight `i32x4.dot_i16x8_s` (exact: codes < 16, |hi| ≤ 2^14, lo < 2^15, so each
                /// lane's sum stays below 2^22), two conversions, two multiply-adds.
                #[inline(always)]
                unsafe fn dot(acc: v128, c: [Self; 4], hp: *const u8, lp: *const u8, scale: f32) -> v128 {
                    let d = |a: Self, p: *const u8, v: usize| i32x4_dot_i16x8(a.0, unsafe { v128_load(p.add(16 * v) as *const v128) });
                    let h = i32x4_add(i32x4_add(d(c[0], hp, 0), d(c[1], hp, 1)), i32x4_add(d(c[2], hp, 2), d(c[3], hp, 3)));
                    let l = i32x4_add(i32x4_add(d(c[0], lp, 0), d(c[1], lp, 1)), i32x4_add(d(c[2], lp, 2), d(c[3], lp, 3)));
                    let (h, l) = (f32x4_convert_i32x4(h), f32x4_convert_i32x4(l));
                    #[cfg(target_feature = "relaxed-simd")]
                    return f32x4_relaxed_madd(f32x4_splat(scale), f32x4_relaxed_madd(h, f32x4_splat(32768.0), l), acc);
                    #[cfg(not(target_feature = "relaxed-simd"))]
                    return f32x4_add(f32x4_mul(f32x4_splat(scale), f32x4_add(f32x4_mul(h, f32x4_splat(32768.0)), l)), acc);
                }
                #[inline(always)]
                fn sum(acc: v128) -> f32 {
                    (f32x4_extract_lane::<0>(acc) + f32x4_extract_lane::<2>(acc)) + (f32x4_extract_lane::<1>(acc) + f32x4_extract_lane::<3>(acc))
                }
                /// Both at once in four lanes (f16_to_f32's steps, lane-wise).
                #[inline(always)]
                unsafe fn two_halves(p: *const u8) -> (f32, f32) {
                    let h = u32x4_extend_low_u16x8(unsafe { v128_load32_zero(p as *const u32) });
                    let scaled = f32x4_mul(i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13), f32x4_splat(f32::from_bits(0x7780_0000)));
                    let special = u32x4_eq(v128_and(h, u32x4_splat(0x7c00)), u32x4_splat(0x7c00));
                    let magnitude = v128_or(scaled, v128_and(special, u32x4_splat(0x7f80_0000)));
                    let v = v128_or(magnitude, i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16));
                    (f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v))
                }
            }
        }
    }

    /// Eight f32 lanes (and eight i32 lanes for the codes), three ways.
    pub(super) mod lanes {
        use crate::model::quant::Codes;

        pub trait Lanes: Copy {
            /// The integer lanes codes are decoded in.
            type I: Codes;
            fn zero() -> Self;
            fn splat(v: f32) -> Self;
            /// SAFETY: `p .. p + 8` readable.
            unsafe fn load(p: *const f32) -> Self;
            /// Eight halves at `p`, widened. SAFETY: `p .. p + 8` readable.
            unsafe fn load_f16(p: *const u16) -> Self;
            /// A hint to fetch the cache line of `data[at]` (`at` may lie past the end).
            #[inline(always)]
            fn prefetch(_data: &[u8], _at: usize) {}
            /// The four halves in `b`, widened (blocks' scales).
            #[inline(always)]
            fn halves(b: &[u8; 8]) -> [f32; 4] {
                std::array::from_fn(|i| crate::model::quant::f16_to_f32(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])))
            }
            /// Integer lanes to floats.
            fn convert(i: Self::I) -> Self;
            fn mul(self, b: Self) -> Self;
            /// `self · b + acc`, fused where the target has a fused multiply-add.
            fn mul_add(self, b: Self, acc: Self) -> Self;
            fn add(self, b: Self) -> Self;
            /// The lanes' sum.
            fn sum(self) -> f32;
        }

        /// A plain array: what LLVM makes of it (SSE2 on a baseline x86-64 build).
        #[derive(Clone, Copy)]
        pub struct Plain([f32; 8]);
        impl Lanes for Plain {
            type I = [i32; 8];
            #[inline(always)]
            fn zero() -> Self {
                Plain([0.0; 8])
            }
            #[inline(always)]
            fn splat(v: f32) -> Self {
                Plain([v; 8])
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                Plain(unsafe { p.cast::<[f32; 8]>().read_unaligned() })
            }
            #[inline(always)]
            unsafe fn load_f16(p: *const u16) -> Self {
                let h = unsafe { p.cast::<[u16; 8]>().read_unaligned() };
                Plain(h.map(|h| crate::model::quant::f16_to_f32(u16::from_le(h))))
            }
            #[inline(always)]
            fn convert(i: [i32; 8]) -> Self {
                Plain(i.map(|v| v as f32))
            }
            #[inline(always)]
            fn mul(self, b: Self) -> Self {
                Plain(std::array::from_fn(|i| self.0[i] * b.0[i]))
            }
            #[inline(always)]
            fn mul_add(self, b: Self, acc: Self) -> Self {
                Plain(std::array::from_fn(|i| self.0[i] * b.0[i] + acc.0[i]))
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                Plain(std::array::from_fn(|i| self.0[i] + b.0[i]))
            }
            #[inline(always)]
            fn sum(self) -> f32 {
                let v = self.0;
                ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
            }
        }

        #[cfg(target_arch = "x86_64")]
        pub use avx2::Avx2;
        /// One AVX register. Only used inside `#[target_feature(enable = "avx2,fma,f16c")]`
        /// functions (into which these always inline), after the CPU was checked.
        #[cfg(target_arch = "x86_64")]
        mod avx2 {
            use super::{Codes, Lanes};
            use std::arch::x86_64::*;

            #[derive(Clone, Copy)]
            pub struct Avx2(__m256);
            #[derive(Clone, Copy)]
            pub struct Avx2I(__m256i);

            impl Codes for Avx2I {
                #[inline(always)]
                fn bytes(b: &[u8; 8]) -> Self {
                    unsafe { Avx2I(_mm256_cvtepu8_epi32(_mm_loadl_epi64(b.as_ptr() as *const __m128i))) }
                }
                #[inline(always)]
                fn signed_bytes(b: &[u8; 8]) -> Self {
                    unsafe { Avx2I(_mm256_cvtepi8_epi32(_mm_loadl_epi64(b.as_ptr() as *const __m128i))) }
                }
                #[inline(always)]
                fn bits(bits: u32, first: u32) -> Self {
                    unsafe {
                        let shifts = _mm256_add_epi32(_mm256_set1_epi32(first as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                        Avx2I(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(bits as i32), shifts), _mm256_set1_epi32(1)))
                    }
                }
                #[inline(always)]
                fn and(self, mask: i32) -> Self {
                    unsafe { Avx2I(_mm256_and_si256(self.0, _mm256_set1_epi32(mask))) }
                }
                #[inline(always)]
                fn shr(self, n: u32) -> Self {
                    unsafe { Avx2I(_mm256_srl_epi32(self.0, _mm_cvtsi32_si128(n as i32))) }
                }
                #[inline(always)]
                fn shl(self, n: u32) -> Self {
                    unsafe { Avx2I(_mm256_sll_epi32(self.0, _mm_cvtsi32_si128(n as i32))) }
                }
                #[inline(always)]
                fn or(self, other: Self) -> Self {
                    unsafe { Avx2I(_mm256_or_si256(self.0, other.0)) }
                }
            }

            impl Lanes for Avx2 {
                type I = Avx2I;
                #[inline(always)]
                fn zero() -> Self {
                    unsafe { Avx2(_mm256_setzero_ps()) }
                }
                #[inline(always)]
                fn splat(v: f32) -> Self {
                    unsafe { Avx2(_mm256_set1_ps(v)) }
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> Self {
                    unsafe { Avx2(_mm256_loadu_ps(p)) }
                }
                #[inline(always)]
                unsafe fn load_f16(p: *const u16) -> Self {
                    unsafe { Avx2(_mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))) }
                }
                #[inline(always)]
                fn prefetch(data: &[u8], at: usize) {
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().wrapping_add(at) as *const i8) }
                }
                /// `vcvtph2ps` straight from memory, written out: with the intrinsics LLVM
                /// narrows the load to a `vpinsrw` of the one half used, which merges into the
                /// register's old value, a dependency from each block to the last one.
                #[inline(always)]
                fn halves(b: &[u8; 8]) -> [f32; 4] {
                    let v: __m128;
                    // SAFETY: reads the 8 bytes of `b`; the caller runs with F16C.
                    unsafe {
                        std::arch::asm!("vcvtph2ps {v}, qword ptr [{p}]", p = in(reg) b.as_ptr(), v = out(xmm_reg) v, options(pure, readonly, nostack, preserves_flags));
                        std::mem::transmute::<__m128, [f32; 4]>(v)
                    }
                }
                #[inline(always)]
                fn convert(i: Avx2I) -> Self {
                    unsafe { Avx2(_mm256_cvtepi32_ps(i.0)) }
                }
                #[inline(always)]
                fn mul(self, b: Self) -> Self {
                    unsafe { Avx2(_mm256_mul_ps(self.0, b.0)) }
                }
                #[inline(always)]
                fn mul_add(self, b: Self, acc: Self) -> Self {
                    unsafe { Avx2(_mm256_fmadd_ps(self.0, b.0, acc.0)) }
                }
                #[inline(always)]
                fn add(self, b: Self) -> Self {
                    unsafe { Avx2(_mm256_add_ps(self.0, b.0)) }
                }
                #[inline(always)]
                fn sum(self) -> f32 {
                    unsafe {
                        let s = _mm_add_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
                        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
                    }
                }
            }
        }

        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        pub use simd128::Simd128;
        /// Two SIMD128 vectors; the multiply-add is one `f32x4.relaxed_madd` in the relaxed-SIMD
        /// build (scripts/relaxed-worker.sh), a multiply and an add otherwise.
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        mod simd128 {
            use super::{Codes, Lanes};
            use core::arch::wasm32::*;

            #[derive(Clone, Copy)]
            pub struct Simd128(v128, v128);
            #[derive(Clone, Copy)]
            pub struct Simd128I(v128, v128);

            impl Codes for Simd128I {
                #[inline(always)]
                fn bytes(b: &[u8; 8]) -> Self {
                    let h = unsafe { u16x8_load_extend_u8x8(b.as_ptr()) };
                    Simd128I(u32x4_extend_low_u16x8(h), u32x4_extend_high_u16x8(h))
                }
                #[inline(always)]
                fn signed_bytes(b: &[u8; 8]) -> Self {
                    let h = unsafe { i16x8_load_extend_i8x8(b.as_ptr() as *const i8) };
                    Simd128I(i32x4_extend_low_i16x8(h), i32x4_extend_high_i16x8(h))
                }
                #[inline(always)]
                fn bits(bits: u32, first: u32) -> Self {
                    // No per-lane shifts in SIMD128: test each lane's bit against its own mask.
                    let v = u32x4_splat(bits >> first);
                    let (m0, m1) = (u32x4(1, 2, 4, 8), u32x4(16, 32, 64, 128));
                    Simd128I(u32x4_shr(u32x4_eq(v128_and(v, m0), m0), 31), u32x4_shr(u32x4_eq(v128_and(v, m1), m1), 31))
                }
                #[inline(always)]
                fn and(self, mask: i32) -> Self {
                    let m = i32x4_splat(mask);
                    Simd128I(v128_and(self.0, m), v128_and(self.1, m))
                }
                #[inline(always)]
                fn shr(self, n: u32) -> Self {
                    Simd128I(u32x4_shr(self.0, n), u32x4_shr(self.1, n))
                }
                #[inline(always)]
                fn shl(self, n: u32) -> Self {
                    Simd128I(i32x4_shl(self.0, n), i32x4_shl(self.1, n))
                }
                #[inline(always)]
                fn or(self, other: Self) -> Self {
                    Simd128I(v128_or(self.0, other.0), v128_or(self.1, other.1))
                }
            }

            impl Lanes for Simd128 {
                type I = Simd128I;
                /// SIMD128 has no prefetch: a load whose value is dropped (volatile, so that it
                /// stays) starts the fetch as well, for the price of a load. Under node (V8) this
                /// took SmolLM2's Q4_1 projections from 16.9 to 13.8 ms per token, the Q8_0 output
                /// matrix from 11.7 to 7.8.
                #[inline(always)]
                fn prefetch(data: &[u8], at: usize) {
                    if let Some(b) = data.get(at) {
                        unsafe { std::ptr::read_volatile(b) };
                    }
                }
                #[inline(always)]
                fn zero() -> Self {
                    Self::splat(0.0)
                }
                #[inline(always)]
                fn splat(v: f32) -> Self {
                    let s = f32x4_splat(v);
                    Simd128(s, s)
                }
                #[inline(always)]
                unsafe fn load(p: *const f32) -> Self {
                    unsafe { Simd128(v128_load(p as *const v128), v128_load(p.add(4) as *const v128)) }
                }
                #[inline(always)]
                unsafe fn load_f16(p: *const u16) -> Self {
                    let h = unsafe { p.cast::<[u16; 8]>().read_unaligned() };
                    let f = h.map(|h| crate::model::quant::f16_to_f32(u16::from_le(h)));
                    unsafe { Self::load(f.as_ptr()) }
                }
                #[inline(always)]
                fn convert(i: Simd128I) -> Self {
                    Simd128(f32x4_convert_i32x4(i.0), f32x4_convert_i32x4(i.1))
                }
                #[inline(always)]
                fn mul(self, b: Self) -> Self {
                    Simd128(f32x4_mul(self.0, b.0), f32x4_mul(self.1, b.1))
                }
                #[inline(always)]
                fn mul_add(self, b: Self, acc: Self) -> Self {
                    #[cfg(target_feature = "relaxed-simd")]
                    return Simd128(f32x4_relaxed_madd(self.0, b.0, acc.0), f32x4_relaxed_madd(self.1, b.1, acc.1));
                    #[cfg(not(target_feature = "relaxed-simd"))]
                    return Simd128(f32x4_add(f32x4_mul(self.0, b.0), acc.0), f32x4_add(f32x4_mul(self.1, b.1), acc.1));
                }
                #[inline(always)]
                fn add(self, b: Self) -> Self {
                    Simd128(f32x4_add(self.0, b.0), f32x4_add(self.1, b.1))
                }
                #[inline(always)]
                fn sum(self) -> f32 {
                    let s = f32x4_add(self.0, self.1);
                    (f32x4_extract_lane::<0>(s) + f32x4_extract_lane::<2>(s)) + (f32x4_extract_lane::<1>(s) + f32x4_extract_lane::<3>(s))
                }
            }
        }
    }
}

/// RMSNorm per row: `out = x / sqrt(mean(x²) + eps) * weight`. x, out: (n, d).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, v), w) in or.iter_mut().zip(xr).zip(weight) {
            *o = v * inv * w;
        }
    }
}

/// LayerNorm per row: `out = (x − mean(x)) / sqrt(var(x) + eps) * weight (+ bias)`, the
/// variance the biased one (as PyTorch's `layer_norm`). x, out: (n, d).
pub fn layer_norm(x: &[f32], weight: &[f32], bias: Option<&[f32]>, eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mean = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for (i, (o, v)) in or.iter_mut().zip(xr).enumerate() {
            *o = (v - mean) * inv * weight[i] + bias.map_or(0.0, |b| b[i]);
        }
    }
}

/// The norm `kind` of each row of x into out, with an optional bias added.
pub fn norm(kind: NormKind, x: &[f32], weight: &[f32], bias: Option<&[f32]>, eps: f32, out: &mut [f32]) {
    match kind {
        NormKind::Layer => layer_norm(x, weight, bias, eps, out),
        NormKind::Rms => {
            rms_norm(x, weight, eps, out);
            if let Some(b) = bias {
                add_bias(out, b);
            }
        }
    }
}

/// x (n, b.len()) += b in every row.
pub fn add_bias(x: &mut [f32], b: &[f32]) {
    for row in x.chunks_exact_mut(b.len()) {
        add_assign(row, b);
    }
}

/// RMSNorm of each `weight.len()`-wide row of x, in place (Gemma's post-norms and per-head
/// QK-norm).
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let d = weight.len();
    for xr in x.chunks_exact_mut(d) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for (v, w) in xr.iter_mut().zip(weight) {
            *v = *v * inv * w;
        }
    }
}

/// Rotary embedding in place: within each head, pair `i < rope_dim/2` rotates by
/// `pos · base^(-2i/rope_dim)`; the pair is `(x[2i], x[2i+1])` ([`RopeStyle::Adjacent`]) or
/// `(x[i], x[i + rope_dim/2])` ([`RopeStyle::Halves`]).
/// x: (n, n_heads * head_dim); row p is position `pos0 + p`.
pub fn rope(x: &mut [f32], n_heads: usize, head_dim: usize, rope_dim: usize, base: f32, pos0: usize, style: RopeStyle) {
    let row = n_heads * head_dim;
    let half = rope_dim / 2;
    // Inverse frequencies as Hugging Face computes them: f32 `1 / base^(2i/d)`.
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / base.powf((2 * i) as f32 / rope_dim as f32)).collect();
    for (p, xr) in x.chunks_exact_mut(row).enumerate() {
        let pos = (pos0 + p) as f32;
        for (i, f) in inv_freq.iter().enumerate() {
            let angle = pos * f;
            let (sin, cos) = angle.sin_cos();
            for h in 0..n_heads {
                let (at, bt) = match style {
                    RopeStyle::Adjacent => (h * head_dim + 2 * i, h * head_dim + 2 * i + 1),
                    RopeStyle::Halves => (h * head_dim + i, h * head_dim + i + half),
                };
                let (a, b) = (xr[at], xr[bt]);
                xr[at] = a * cos - b * sin;
                xr[bt] = a * sin + b * cos;
            }
        }
    }
}

/// e^x in f32 for the CPU engine's softmax and gated activations, written without calls or
/// branches so that a loop over it vectorizes (SIMD128 in the browser, SSE/AVX natively),
/// where `f32::exp` is one libm call per value (in the browser worker, SwiGLU's exps alone
/// took 10 % of a forward pass). Cephes' `expf`: x = n·ln 2 + r with ln 2 split in two parts so
/// `r` is exact, |r| ≤ ln 2 / 2, e^r by a degree-6 polynomial, and 2ⁿ built in the exponent
/// bits as two factors (n runs from -126 to 128). Within 2 ulp of e^x (see the test); 0 below
/// ln(f32::MIN_POSITIVE) ≈ -87.34 (no subnormal results), +∞ above ln(f32::MAX) ≈ 88.72, NaN
/// for NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LO: f32 = -87.336_55; // ln(f32::MIN_POSITIVE)
    const HI: f32 = 88.722_84; // ln(f32::MAX)
    const C1: f32 = 0.693_359_4; // ln 2, high part (9 significant bits: n · C1 is exact)
    const C2: f32 = -2.121_944_4e-4; // ln 2 - C1
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer, kept in the low bits
    let xc = x.clamp(LO, HI);
    let t = xc * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND; // round(x / ln 2)
    let r = xc - n * C1 - n * C2;
    let poly = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5;
    let er = poly * r * r + r + 1.0;
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32; // n as an integer
    let (a, b) = (ni >> 1, ni - (ni >> 1));
    let scale = |e: i32| f32::from_bits(((e + 127) as u32) << 23); // 2ᵉ for -126 ≤ e ≤ 127
    let y = er * scale(a) * scale(b);
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else {
        y
    }
}

/// `gate = silu(gate) * up`, elementwise (SwiGLU).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// GELU's tanh approximation as PyTorch's `gelu(approximate="tanh")` (GPT-2's `gelu_new`).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    // tanh(v) = sign(v) (1 - e) / (1 + e) with e = e^(-2|v|) ≤ 1 (no overflow), as the
    // GPU kernel writes it.
    let v = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    let e = exp(-2.0 * v.abs());
    let tanh = ((1.0 - e) / (1.0 + e)).copysign(v);
    0.5 * x * (1.0 + tanh)
}

/// `x / (1 + e^-x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `gate = gelu_tanh(gate) * up` (GeGLU, Gemma).
pub fn geglu_tanh(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = gelu_tanh(*g) * u;
    }
}

/// x = act(x), elementwise (a plain feed-forward network).
pub fn activate(act: Act, x: &mut [f32]) {
    match act {
        Act::Silu => x.iter_mut().for_each(|v| *v = silu(*v)),
        Act::GeluTanh => x.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
    }
}

pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Causal multi-head attention with GQA/MQA and an optional sliding window, tiled over query
/// rows. With a window `w` a tile only scores keys from its first row's window start, so the
/// cost is O(n·w), and row `i` puts exactly 0 on keys older than `i + 1 - w`.
///
/// The n queries are positions `s.past ..` (a KV cache holds the `s.past` before them):
/// q: (n, n_head * hd), k and v: at least (past + n, n_kv * hd), out: (n, n_head * hd),
/// lse: (n, n_head) — each query row's log-sum-exp of its scaled scores, from which any
/// probability is recomputed later as `exp(q·k / sqrt(hd) - lse)`.
///
/// Query head `h` reads KV head `h / (n_head / n_kv)` (the grouping of Hugging Face's
/// `repeat_kv` and llama.cpp's GQA broadcast).
///
/// The two products per tile go through `matrixmultiply` natively and through the panel
/// kernel of `panel.rs` in the browser (as the weights' matmuls do).
pub fn causal_attention(s: AttnShape, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], lse: &mut [f32]) {
    causal_attention_with(s, q, k, v, out, lse, cfg!(all(target_arch = "wasm32", target_feature = "simd128")))
}

fn causal_attention_with(s: AttnShape, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], lse: &mut [f32], panel: bool) {
    let (n, past, n_head, n_kv, hd) = (s.n, s.past, s.n_head, s.n_kv, s.head_dim);
    let (q_row, kv_row) = (n_head * hd, n_kv * hd);
    assert_eq!(q.len(), n * q_row);
    assert!(k.len() >= s.kv_len() * kv_row && v.len() >= s.kv_len() * kv_row, "attention: the cache holds fewer than {} keys", s.kv_len());
    assert_eq!(out.len(), n * q_row);
    assert_eq!(lse.len(), n * n_head);
    let group = n_head / n_kv;
    let scale = s.scale();
    let tiles = n.div_ceil(ATTN_QUERY_TILE);
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let lse_ptr = SyncPtr(lse.as_mut_ptr());
    let run = |task: usize| {
        let (h, t) = (task / tiles, task % tiles);
        let g = h / group;
        let q0 = t * ATTN_QUERY_TILE;
        let rows = ATTN_QUERY_TILE.min(n - q0);
        let k_lo = s.first_key(past + q0); // the tile's first row sees the oldest key
        let kv_len = s.last_key(past + q0 + rows - 1) + 1 - k_lo; // causal: the tile's last row sees keys up to past+q0+rows-1
        SCRATCH.with(|s_| {
            let s_ = &mut *s_.borrow_mut();
            if s_.len() < rows * kv_len {
                s_.resize(rows * kv_len, 0.0);
            }
            let scores = &mut s_[..rows * kv_len]; // (rows, kv_len): keys k_lo..k_lo+kv_len
            // SAFETY: A = q rows q0.. of head h (rows × hd, row stride q_row); B = kᵀ of KV
            // head g (hd × kv_len); C = scores. All inside their slices.
            if panel {
                super::panel::gemm_abt(rows, hd, kv_len, &q[q0 * q_row + h * hd..], q_row, &k[k_lo * kv_row + g * hd..], kv_row, scores, kv_len);
                scores.iter_mut().for_each(|v| *v *= scale);
            } else {
                unsafe {
                    matrixmultiply::sgemm(rows, hd, kv_len, scale, q.as_ptr().add(q0 * q_row + h * hd), q_row as isize, 1, k.as_ptr().add(k_lo * kv_row + g * hd), 1, kv_row as isize, 0.0, scores.as_mut_ptr(), kv_len as isize, 1);
                }
            }
            for r in 0..rows {
                let i = q0 + r; // the query row; its position is past + i
                let row = &mut scores[r * kv_len..(r + 1) * kv_len];
                let (first, last) = (s.first_key(past + i) - k_lo, s.last_key(past + i) - k_lo);
                row[..first].fill(0.0);
                if s.masks_inside() {
                    // Sinks beside a window, or key 0 hidden: hidden keys get e^−∞ = 0.
                    for (j, v) in row[first..=last].iter_mut().enumerate() {
                        if !s.visible(past + i, k_lo + first + j) {
                            *v = f32::NEG_INFINITY;
                        }
                    }
                }
                let visible = &mut row[first..=last];
                let max = visible.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                for s in visible.iter_mut() {
                    *s = exp(*s - max);
                }
                let sum: f32 = visible.iter().sum();
                let inv = 1.0 / sum;
                for s in visible.iter_mut() {
                    *s *= inv;
                }
                row[last + 1..].fill(0.0);
                // SAFETY: lse[i, h] belongs to this (h, tile) task only.
                unsafe { *lse_ptr.get().add(i * n_head + h) = max + sum.ln() };
            }
            // SAFETY: A = probabilities (rows × kv_len); B = v of KV head g (kv_len × hd);
            // C = out rows q0.. of head h, written by this task only.
            unsafe {
                if panel {
                    // Rows q0 .. q0 + rows of `out` from head h's column on; only columns
                    // h·hd .. h·hd + hd of them are written, as above.
                    let o = std::slice::from_raw_parts_mut(out_ptr.get().add(q0 * q_row + h * hd), (rows - 1) * q_row + hd);
                    super::panel::gemm_ab(rows, kv_len, hd, scores, kv_len, &v[k_lo * kv_row + g * hd..], kv_row, o, q_row);
                } else {
                    matrixmultiply::sgemm(rows, kv_len, hd, 1.0, scores.as_ptr(), kv_len as isize, 1, v.as_ptr().add(k_lo * kv_row + g * hd), kv_row as isize, 1, 0.0, out_ptr.get().add(q0 * q_row + h * hd), q_row as isize, 1);
                }
            }
        });
    };
    if panel {
        // One task at a time: each builds a `&mut` view of its rows of `out` (see above).
        (0..n_head * tiles).for_each(run);
    } else {
        for_each_index(n_head * tiles, run);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::gguf::GgmlType;
    use crate::model::quant::quantize;

    pub(crate) use crate::model::quant::quantize::{random_matrix as weights, random_values as values};

    /// Plain triple-loop attention, f64 accumulation: the reference.
    fn reference_attention(q: &[f32], k: &[f32], v: &[f32], n: usize, n_head: usize, n_kv: usize, hd: usize, window: Option<usize>) -> (Vec<f32>, Vec<f32>) {
        let mut out = vec![0.0; n * n_head * hd];
        let mut lse = vec![0.0; n_head * n];
        let scale = 1.0 / (hd as f64).sqrt();
        for h in 0..n_head {
            let g = h / (n_head / n_kv);
            for i in 0..n {
                let lo = window.map(|w| (i + 1).saturating_sub(w)).unwrap_or(0);
                let s: Vec<f64> = (0..=i)
                    .map(|j| if j < lo { f64::NEG_INFINITY } else { 1.0 } * (0..hd).map(|d| q[i * n_head * hd + h * hd + d] as f64 * k[j * n_kv * hd + g * hd + d] as f64).sum::<f64>() * scale)
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                lse[i * n_head + h] = (m + z.ln()) as f32;
                for d in 0..hd {
                    out[i * n_head * hd + h * hd + d] = (0..=i).map(|j| (s[j] - m).exp() / z * v[j * n_kv * hd + g * hd + d] as f64).sum::<f64>() as f32;
                }
            }
        }
        (out, lse)
    }

    #[test]
    fn attention_matches_reference_on_edge_sizes() {
        let (n_head, n_kv, hd) = (9, 3, 64);
        for n in [1, 2, 31, 32, 33, 64, 65, 257] {
            let q: Vec<f32> = values(n * n_head * hd, 1).iter().map(|x| x * 3.0).collect();
            let k: Vec<f32> = values(n * n_kv * hd, 2).iter().map(|x| x * 3.0).collect();
            let v = values(n * n_kv * hd, 3);
            let mut out = vec![0.0; q.len()];
            let mut lse = vec![0.0; n_head * n];
            let (ro, rl) = reference_attention(&q, &k, &v, n, n_head, n_kv, hd, None);
            // Both product kernels: matrixmultiply (native) and the panel kernel (the browser's).
            for panel in [false, true] {
                causal_attention_with(AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window: None, ..Default::default() }, &q, &k, &v, &mut out, &mut lse, panel);
                let eo = out.iter().zip(&ro).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                let el = lse.iter().zip(&rl).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(eo < 1e-5 && el < 1e-4, "n={n} panel={panel}: out err {eo}, lse err {el}");
            }
        }
    }

    /// New queries over a KV cache: the last `n − past` rows of a pass over n tokens, given
    /// every key and value, match the reference's rows `past ..` (decode steps: n − past = 1;
    /// windows shorter and longer than the cache; GQA and MHA).
    #[test]
    fn attention_over_a_cache_matches_the_rows_of_one_pass() {
        for (n, past, n_head, n_kv, hd, window) in [(1, 0, 2, 2, 8, None), (9, 8, 4, 2, 16, None), (70, 69, 4, 1, 64, Some(16)), (130, 64, 3, 3, 32, None), (200, 137, 8, 2, 64, Some(100)), (67, 1, 4, 4, 8, Some(70))] {
            let q: Vec<f32> = values(n * n_head * hd, 21).iter().map(|x| x * 3.0).collect();
            // A cache with room to spare: rows past n are never read.
            let k: Vec<f32> = values((n + 5) * n_kv * hd, 22).iter().map(|x| x * 3.0).collect();
            let v = values((n + 5) * n_kv * hd, 23);
            let (ro, rl) = reference_attention(&q, &k[..n * n_kv * hd], &v[..n * n_kv * hd], n, n_head, n_kv, hd, window);
            let m = n - past;
            let mut out = vec![0.0; m * n_head * hd];
            let mut lse = vec![0.0; m * n_head];
            for panel in [false, true] {
                causal_attention_with(AttnShape { n: m, past, n_head, n_kv, head_dim: hd, window, ..Default::default() }, &q[past * n_head * hd..], &k, &v, &mut out, &mut lse, panel);
                let eo = out.iter().zip(&ro[past * n_head * hd..]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                let el = lse.iter().zip(&rl[past * n_head..]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(eo < 1e-5 && el < 1e-4, "n={n} past={past} w={window:?} panel={panel}: out err {eo}, lse err {el}");
            }
        }
    }

    /// LayerNorm (with and without bias) and the RMS path with a bias against f64 sums, on
    /// rows of 1, 3, 64 and 768 values; GELU(tanh) against f64 `tanh`.
    #[test]
    fn layer_norm_bias_and_gelu_match_plain_references() {
        for (n, d) in [(1, 1), (2, 3), (5, 64), (3, 768)] {
            let x: Vec<f32> = values(n * d, 31).iter().map(|v| v * 4.0 + 0.5).collect();
            let (w, b) = (values(d, 32), values(d, 33));
            for bias in [None, Some(&b[..])] {
                let mut out = vec![0.0; n * d];
                norm(NormKind::Layer, &x, &w, bias, 1e-5, &mut out);
                for (r, row) in x.chunks_exact(d).enumerate() {
                    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
                    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
                    for c in 0..d {
                        let want = (row[c] as f64 - mean) / (var + 1e-5).sqrt() * w[c] as f64 + bias.map_or(0.0, |b| b[c] as f64);
                        assert!((out[r * d + c] as f64 - want).abs() < 2e-5, "layer norm n={n} d={d} [{r},{c}]: {} vs {want}", out[r * d + c]);
                    }
                }
                norm(NormKind::Rms, &x, &w, bias, 1e-6, &mut out);
                for (r, row) in x.chunks_exact(d).enumerate() {
                    let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
                    for c in 0..d {
                        let want = row[c] as f64 / (ms + 1e-6).sqrt() * w[c] as f64 + bias.map_or(0.0, |b| b[c] as f64);
                        assert!((out[r * d + c] as f64 - want).abs() < 2e-5, "rms norm + bias n={n} d={d}");
                    }
                }
            }
        }
        let mut x: Vec<f32> = vec![-30.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 3.0, 30.0];
        let want: Vec<f64> = x.iter().map(|&v| { let v = v as f64; 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh()) }).collect();
        activate(Act::GeluTanh, &mut x);
        for (g, w) in x.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6 * w.abs().max(1.0), "gelu: {g} vs {w}");
        }
    }

    /// The fused argmax against the argmax of the full product: 150 rows (three blocks, the last
    /// partial, split between threads), quantized weights; then exact ties across blocks
    /// (rows 10, 70 and 140 identical and largest: the lowest index wins) and NaN rows.
    #[test]
    fn matmul_argmax_matches_the_full_product_and_keeps_the_lowest_tie() {
        use crate::model::gguf::GgmlType;
        use crate::model::quant::quantize;
        let (rows, cols, n) = (150, 64, 37);
        let x = values(n * cols, 7);
        let w = QTensor::new("w", GgmlType::Q4_1, rows, cols, quantize::q4_1(&values(rows * cols, 8))).unwrap();
        let mut full = vec![0.0; n * rows];
        matmul_qt(&x, n, &w, &mut full);
        let argmax = |v: &[f32]| v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as f32;
        let want: Vec<f32> = full.chunks_exact(rows).map(argmax).collect();
        assert!(want.iter().any(|&i| i >= 128.0) && want.iter().any(|&i| i < 64.0), "winners in several blocks: {want:?}");
        let mut got = vec![f32::NAN; n];
        matmul_argmax(&x, n, &w, &mut got);
        assert_eq!(got, want);

        let mut wf = values(rows * cols, 9);
        for r in [10, 70, 140] {
            wf[r * cols..(r + 1) * cols].fill(4.0);
        }
        wf[20 * cols] = f32::NAN; // row 20 is NaN for every token
        let w = QTensor::new("w", GgmlType::F32, rows, cols, wf.iter().flat_map(|v| v.to_le_bytes()).collect()).unwrap();
        let xp: Vec<f32> = x.iter().map(|v| v.abs() + 0.1).collect(); // rows of x all positive
        matmul_argmax(&xp, n, &w, &mut got);
        assert_eq!(got, vec![10.0; n]);
    }

    #[test]
    fn attention_1000_tokens_matches_reference_on_sampled_rows() {
        let (n, n_head, n_kv, hd) = (1000, 2, 1, 64);
        let q = values(n * n_head * hd, 4);
        let k = values(n * n_kv * hd, 5);
        let v = values(n * n_kv * hd, 6);
        let mut out = vec![0.0; q.len()];
        let mut lse = vec![0.0; n_head * n];
        causal_attention(AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window: None, ..Default::default() }, &q, &k, &v, &mut out, &mut lse);
        let (ro, rl) = reference_attention(&q, &k, &v, n, n_head, n_kv, hd, None);
        for i in [0, 1, 63, 64, 500, 999] {
            for h in 0..n_head {
                assert!((lse[i * n_head + h] - rl[i * n_head + h]).abs() < 1e-4);
                for d in 0..hd {
                    let at = i * n_head * hd + h * hd + d;
                    assert!((out[at] - ro[at]).abs() < 1e-5, "row {i} head {h}");
                }
            }
        }
    }


    /// The fused gemv against dequantize-then-dot in f64, every fused format: one block of
    /// columns, several, and the widest the models use (2048); rows across a row chunk and not
    /// a multiple of it; 1, 2 and 3 tokens — through `matmul_qt` (this CPU's lanes, the row
    /// chunks, the sums of x) and the plain lanes. Errors are bounded by 1e-5 of `Σ |x·w|`, the
    /// scale of f32 rounding in a dot product. Then `matmul_argmax` on the same few tokens.
    #[test]
    fn gemv_matches_the_dequantized_product_on_odd_shapes() {
        let cases = [
            (GgmlType::Q4_0, &[32, 96, 2048][..]),
            (GgmlType::Q4_1, &[32, 576, 2048]),
            (GgmlType::Q5_0, &[32, 160, 2048]),
            (GgmlType::Q8_0, &[32, 640, 2048]),
            (GgmlType::Q4K, &[256, 768, 2048]),
            (GgmlType::Q6K, &[256, 512, 2048]),
            (GgmlType::F16, &[7, 40, 2048 + 5]),
            (GgmlType::F32, &[1, 33, 2048 + 3]),
        ];
        for (ty, widths) in cases {
            assert!(gemv_fuses(ty));
            for &cols in widths {
                for rows in [1, 13, MATMUL_ROW_CHUNK + 6] {
                    let w = weights(ty, rows, cols, (rows * cols) as u64);
                    let wf = w.to_f32();
                    for n in 1..=GEMV_MAX_TOKENS {
                        let x = values(n * cols, n as u64 + 40);
                        let mut got = vec![f32::NAN; n * rows];
                        matmul_qt(&x, n, &w, &mut got);
                        let mut plain = vec![f32::NAN; n * rows];
                        // SAFETY: plain is (n, rows), written at stride rows.
                        unsafe { gemv::rows_plain(&x, n, &w, &gemv::XSums::new(&x, cols, ty), 0, rows, plain.as_mut_ptr(), rows) };
                        // The browser's fixed-point path where it applies (else the plain lanes again).
                        let mut fixed = plain.clone();
                        if gemv::fixed::takes(ty) {
                            // SAFETY: as above.
                            unsafe { gemv::rows_fixed_plain(&x, n, &w, &gemv::XSums::new(&x, cols, ty), 0, rows, fixed.as_mut_ptr(), rows) };
                        }
                        for t in 0..n {
                            for r in 0..rows {
                                let terms = (0..cols).map(|c| x[t * cols + c] as f64 * wf[r * cols + c] as f64);
                                let (want, scale): (f64, f64) = terms.fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
                                for (path, v) in [("matmul_qt", got[t * rows + r]), ("plain lanes", plain[t * rows + r]), ("fixed point", fixed[t * rows + r])] {
                                    let e = (v as f64 - want).abs();
                                    assert!(e <= 1e-5 * scale + 1e-30, "{} {rows}×{cols} n={n} [{t},{r}] {path}: {v} vs {want} (scale {scale})", ty.name());
                                }
                            }
                        }
                        let mut argmax = vec![f32::NAN; n];
                        matmul_argmax(&x, n, &w, &mut argmax);
                        for t in 0..n {
                            let row = &got[t * rows..(t + 1) * rows];
                            let best = row.iter().enumerate().fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
                            assert_eq!(argmax[t], best as f32, "{} {rows}×{cols} n={n} token {t}", ty.name());
                        }
                    }
                }
            }
        }
    }

    /// The browser's fixed-point split on the activations that stress it: a zero group, one
    /// value far above the rest (the small ones fall below the group's resolution but not below
    /// f32's share of the sum), largest values just under and at a power of two (the rounding
    /// must not carry past 29 bits), huge and subnormal groups; every bound as in the test
    /// above. A group holding an infinity or NaN makes every dot product NaN.
    #[test]
    fn fixed_point_split_keeps_f32_accuracy() {
        let cols = 256;
        let base = values(cols, 5);
        let patterns: [(&str, Box<dyn Fn(usize) -> f32>); 7] = [
            ("zero group", Box::new(|i| if i < 32 { 0.0 } else { base[i] })),
            ("one large value", Box::new(|i| if i % 32 == 3 { 1e6 } else { base[i] * 1e-6 })),
            ("just under a power of two", Box::new(|i| if i % 32 == 0 { f32::from_bits(0x3fff_ffff) } else { -base[i] })),
            ("a power of two", Box::new(|i| if i % 32 == 7 { -4.0 } else { base[i] * 4.0 })),
            ("huge", Box::new(|i| base[i] * 1e36)),
            ("tiny", Box::new(|i| base[i] * 1e-36)),
            ("subnormal", Box::new(|i| base[i] * 1e-42)),
        ];
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4K] {
            assert!(gemv::fixed::takes(ty));
            let rows = 5;
            let w = weights(ty, rows, cols, 11);
            let wf = w.to_f32();
            for (name, f) in &patterns {
                let x: Vec<f32> = (0..cols).map(f).collect();
                let mut got = vec![f32::NAN; rows];
                // SAFETY: got is (1, rows).
                unsafe { gemv::rows_fixed_plain(&x, 1, &w, &gemv::XSums::new(&x, cols, ty), 0, rows, got.as_mut_ptr(), rows) };
                for r in 0..rows {
                    let terms = (0..cols).map(|c| x[c] as f64 * wf[r * cols + c] as f64);
                    let (want, scale): (f64, f64) = terms.fold((0.0, 0.0), |(s, a), v| (s + v, a + v.abs()));
                    assert!((got[r] as f64 - want).abs() <= 1e-5 * scale + 1e-30, "{} {name} row {r}: {} vs {want} (scale {scale})", ty.name(), got[r]);
                }
            }
            for bad in [f32::INFINITY, f32::NAN] {
                let mut x = base.clone();
                x[40] = bad;
                let mut got = vec![0.0; rows];
                // SAFETY: as above.
                unsafe { gemv::rows_fixed_plain(&x, 1, &w, &gemv::XSums::new(&x, cols, ty), 0, rows, got.as_mut_ptr(), rows) };
                assert!(got.iter().all(|v| v.is_nan()), "{} with {bad}: {got:?}", ty.name());
            }
        }
    }

    #[test]
    fn quantized_matmul_matches_dequantized_reference() {
        for (ty, rows, cols, n) in [(GgmlType::Q4_1, 65, 96, 1), (GgmlType::Q8_0, 130, 64, 33), (GgmlType::Q4_0, 7, 32, 5), (GgmlType::F32, 64, 33, 3)] {
            let w = values(rows * cols, 7);
            let data = match ty {
                GgmlType::Q4_1 => quantize::q4_1(&w),
                GgmlType::Q8_0 => quantize::q8_0(&w),
                GgmlType::Q4_0 => quantize::q4_0(&w),
                _ => quantize::f32_bytes(&w),
            };
            let qt = QTensor::new("w", ty, rows, cols, data).unwrap();
            let wf = qt.to_f32();
            let x = values(n * cols, 8);
            let mut out = vec![0.0; n * rows];
            matmul_qt(&x, n, &qt, &mut out);
            for i in 0..n {
                for r in 0..rows {
                    let expect: f64 = (0..cols).map(|c| x[i * cols + c] as f64 * wf[r * cols + c] as f64).sum();
                    assert!((out[i * rows + r] as f64 - expect).abs() < 1e-4, "{} ({rows}x{cols}, n={n}) [{i},{r}]", ty.name());
                }
            }
        }
    }

    #[test]
    fn sliding_window_attention_matches_reference_on_edge_sizes() {
        // MQA with Gemma's head size; windows shorter, equal to and longer than the tiles.
        let (n_head, n_kv, hd) = (4, 1, 256);
        for (n, w) in [(1, 1), (5, 1), (70, 3), (130, 64), (130, 65), (200, 512), (300, 100)] {
            let q: Vec<f32> = values(n * n_head * hd, 11).iter().map(|x| x * 2.0).collect();
            let k: Vec<f32> = values(n * n_kv * hd, 12).iter().map(|x| x * 2.0).collect();
            let v = values(n * n_kv * hd, 13);
            let mut out = vec![0.0; q.len()];
            let mut lse = vec![0.0; n_head * n];
            let (ro, rl) = reference_attention(&q, &k, &v, n, n_head, n_kv, hd, Some(w));
            for panel in [false, true] {
                causal_attention_with(AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window: Some(w), ..Default::default() }, &q, &k, &v, &mut out, &mut lse, panel);
                let eo = out.iter().zip(&ro).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                let el = lse.iter().zip(&rl).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(eo < 1e-5 && el < 1e-4, "n={n} w={w} panel={panel}: out err {eo}, lse err {el}");
            }
        }
    }

    #[test]
    fn rope_halves_pairs_i_with_i_plus_half() {
        let (hd, heads) = (8, 1);
        let mut x = values(3 * hd, 10);
        let orig = x.clone();
        rope(&mut x, heads, hd, hd, 10000.0, 0, RopeStyle::Halves);
        // Position 2, pair 1 = (x[1], x[5]) rotates by 2 · 10000^(-2/8).
        let theta = 2.0 * 10000f32.powf(-2.0 / 8.0);
        let (a, b) = (orig[2 * hd + 1], orig[2 * hd + 5]);
        assert!((x[2 * hd + 1] - (a * theta.cos() - b * theta.sin())).abs() < 1e-5);
        assert!((x[2 * hd + 5] - (a * theta.sin() + b * theta.cos())).abs() < 1e-5);
        assert_eq!(&x[..hd], &orig[..hd]);
    }

    #[test]
    fn geglu_matches_erf_free_formula_and_known_values() {
        let mut g = vec![0.0, 1.0, -3.0, 10.0];
        geglu_tanh(&mut g, &[1.0, 2.0, 1.0, 0.5]);
        // gelu_tanh(1) = 0.841192, gelu_tanh(-3) = -0.003637 (PyTorch), gelu(10) ≈ 10.
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 * 0.841192).abs() < 1e-5, "{}", g[1]);
        assert!((g[2] + 0.003637).abs() < 1e-5, "{}", g[2]);
        assert!((g[3] - 5.0).abs() < 1e-5);
        let mut x = vec![1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0];
        rms_norm_in_place(&mut x, &[1.0, 2.0, 1.0, 0.5], 1e-6);
        let inv = 1.0 / (7.5f32 + 1e-6).sqrt();
        assert!((x[1] - 2.0 * inv * 2.0).abs() < 1e-6);
        let inv2 = 1.0 / (5.25f32 / 4.0 + 1e-6).sqrt();
        assert!((x[7] - 2.0 * inv2 * 0.5).abs() < 1e-6);
    }

    #[test]
    fn rope_rotates_adjacent_pairs_and_keeps_norm() {
        let (hd, heads) = (8, 2);
        let mut x = values(3 * heads * hd, 9);
        let orig = x.clone();
        rope(&mut x, heads, hd, hd, 10000.0, 0, RopeStyle::Adjacent);
        // Position 0 is the identity.
        assert_eq!(&x[..heads * hd], &orig[..heads * hd]);
        // Position 2, pair 0 rotates by 2 radians.
        let (a, b) = (orig[2 * heads * hd], orig[2 * heads * hd + 1]);
        let (s, c) = 2f32.sin_cos();
        assert!((x[2 * heads * hd] - (a * c - b * s)).abs() < 1e-6);
        assert!((x[2 * heads * hd + 1] - (a * s + b * c)).abs() < 1e-6);
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!((norm(&x) - norm(&orig)).abs() < 1e-4);
    }

    /// Every f32 from -90 to 90 in steps of 2⁻¹⁰ (and the edges) against f64's e^x: within 2 ulp
    /// where the result is a normal f32, exact 0 / ∞ / NaN past the ends.
    #[test]
    fn exp_is_within_two_ulp_of_the_f64_exponential() {
        let mut worst = 0.0f64;
        for i in -90 * 1024..=90 * 1024 {
            let x = i as f32 / 1024.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            if want < f32::MIN_POSITIVE as f64 {
                assert_eq!(got, 0.0, "e^{x}");
            } else if want > f32::MAX as f64 {
                assert_eq!(got, f64::INFINITY, "e^{x}");
            } else {
                let ulp = f32::EPSILON as f64 * 2f64.powi(want.log2().floor() as i32);
                let e = (got - want).abs() / ulp;
                assert!(e <= 2.0, "e^{x}: {got} vs {want}, {e} ulp");
                worst = worst.max(e);
            }
        }
        assert!(worst > 0.0, "a polynomial is not exact everywhere: the sweep compared nothing");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        for x in [88.7f32, -87.3, 0.5 * std::f32::consts::LN_2, 1e-8] {
            assert!((exp(x) as f64 / (x as f64).exp() - 1.0).abs() < 3e-7, "e^{x}");
        }
    }

    #[test]
    fn rms_norm_and_swiglu_match_formulas() {
        let x = vec![1.0, 2.0, 3.0, 4.0];
        let w = vec![1.0, 0.5, 2.0, 1.0];
        let mut out = vec![0.0; 4];
        rms_norm(&x, &w, 1e-5, &mut out);
        let inv = 1.0 / (7.5f32 + 1e-5).sqrt();
        for i in 0..4 {
            assert!((out[i] - x[i] * inv * w[i]).abs() < 1e-6);
        }
        let mut g = vec![0.0, 1.0, -2.0];
        swiglu(&mut g, &[1.0, 2.0, 3.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
        assert!((g[2] - 3.0 * -2.0 / (1.0 + 2f32.exp())).abs() < 1e-6);
    }
}
