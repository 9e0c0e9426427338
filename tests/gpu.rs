//! GPU kernels and the whole GPU forward pass against the CPU engine and the transformers
//! reference. On CI these run on Mesa's lavapipe (`WGPU_BACKEND=vulkan`, set by `make test`);
//! a machine without any adapter fails here rather than skipping.

mod common;

use attnlab::backends::cpu::ops as cpu;
use attnlab::backends::gpu::context::{GpuContext, MatmulKernel};
use attnlab::backends::gpu::ops::{self, AttnShape};
use attnlab::backends::gpu::weights::GpuMatrix;
use attnlab::backends::gpu::GpuBackend;
use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions};
use attnlab::model::gguf::GgmlType;
use attnlab::model::arch::{Act, NormKind, RopeStyle};
use attnlab::model::quant::{quantize, QTensor};
use std::sync::OnceLock;

fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::new_blocking().unwrap_or_else(|e| panic!("{e}: GPU tests need an adapter (make setup installs mesa-vulkan-drivers; run with WGPU_BACKEND=vulkan)")))
}

fn read(ctx: &GpuContext, bufs: &[(&wgpu::Buffer, usize)], enc: wgpu::CommandEncoder) -> Vec<Vec<f32>> {
    let mut enc = enc;
    let staged = ctx.stage(&mut enc, bufs);
    ctx.queue.submit([enc.finish()]);
    ctx.read_staged(staged).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn flash_and_naive_match_the_cpu_reference_on_edge_sizes() {
    let ctx = ctx();
    let (n_head, n_kv, hd) = (9, 3, 64);
    for n in [1, 31, 32, 33, 64, 65, 257, 1000] {
        let q: Vec<f32> = common::values(n * n_head * hd, 1, 2.0);
        let k: Vec<f32> = common::values(n * n_kv * hd, 2, 2.0);
        let v: Vec<f32> = common::values(n * n_kv * hd, 3, 1.0);
        let (mut o_ref, mut lse_ref) = (vec![0.0; n * n_head * hd], vec![0.0; n_head * n]);
        let shape = AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window: None, ..Default::default() };
        cpu::causal_attention(shape, &q, &k, &v, &mut o_ref, &mut lse_ref);

        let (qb, kb, vb) = (ctx.upload("q", &q), ctx.upload("k", &k), ctx.upload("v", &v));
        let (o_f, l_f, o_n, l_n) = (ctx.scratch("o", q.len()), ctx.scratch("lse", n_head * n), ctx.scratch("o", q.len()), ctx.scratch("lse", n_head * n));
        let s = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("S"), size: ops::naive_scratch_bytes(ctx, shape) as u64, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
        let mut enc = ctx.encoder("attention test");
        ops::flash_attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o_f, &l_f);
        ops::naive_attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o_n, &l_n, &s);
        let out = read(ctx, &[(&o_f, q.len()), (&l_f, n_head * n), (&o_n, q.len()), (&l_n, n_head * n)], enc);
        let (ef, lf, en, ln) = (max_diff(&out[0], &o_ref), max_diff(&out[1], &lse_ref), max_diff(&out[2], &o_ref), max_diff(&out[3], &lse_ref));
        assert!(ef < 1e-5 && lf < 1e-4, "n={n}: flash out err {ef}, lse err {lf}");
        assert!(en < 1e-5 && ln < 1e-4, "n={n}: naive out err {en}, lse err {ln}");
    }
}

#[test]
fn flash_with_sliding_window_and_mqa_head_256_matches_the_cpu() {
    let ctx = ctx();
    let (n_head, n_kv, hd) = (4, 1, 256);
    for (n, w) in [(1, 1), (9, 4), (70, 3), (130, 64), (300, 100), (600, 512)] {
        let shape = AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window: Some(w), ..Default::default() };
        let q: Vec<f32> = common::values(n * n_head * hd, 31, 2.0);
        let k: Vec<f32> = common::values(n * n_kv * hd, 32, 2.0);
        let v: Vec<f32> = common::values(n * n_kv * hd, 33, 1.0);
        let (mut o_ref, mut lse_ref) = (vec![0.0; n * n_head * hd], vec![0.0; n_head * n]);
        cpu::causal_attention(shape, &q, &k, &v, &mut o_ref, &mut lse_ref);
        let (qb, kb, vb) = (ctx.upload("q", &q), ctx.upload("k", &k), ctx.upload("v", &v));
        let (o, l, probs) = (ctx.scratch("o", q.len()), ctx.scratch("lse", n_head * n), ctx.scratch("probs", n * n));
        let mut enc = ctx.encoder("window test");
        ops::flash_attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o, &l);
        attnlab::backends::gpu::maps::attention_probs(ctx, &mut enc, shape, &qb, &kb, &l, 2, &probs);
        let out = read(ctx, &[(&o, q.len()), (&l, n_head * n), (&probs, n * n)], enc);
        let (eo, el) = (max_diff(&out[0], &o_ref), max_diff(&out[1], &lse_ref));
        assert!(eo < 1e-5 && el < 1e-4, "n={n} w={w}: out err {eo}, lse err {el}");
        // The recomputed map: zero outside the band, rows summing to 1.
        for i in 0..n {
            let row = &out[2][i * n..(i + 1) * n];
            let lo = (i + 1).saturating_sub(w);
            assert!(row[..lo].iter().all(|&p| p == 0.0), "n={n} w={w} row {i} sees an old key");
            assert!((row[lo..=i].iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}

#[test]
fn argmax_rows_match_the_cpu_with_ties_and_offsets() {
    let ctx = ctx();
    let (rows, width) = (5, 70_001);
    let mut x = common::values(rows * width, 51, 1.0);
    x[2 * width + 69_999] = 5.0; // near the end
    x[3 * width + 17] = 5.0; // a tie: the lower index wins
    x[3 * width + 40_000] = 5.0;
    let mut expect = vec![0.0; rows + 3];
    for (r, row) in x.chunks_exact(width).enumerate() {
        expect[3 + r] = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as f32;
    }
    assert_eq!(expect[3 + 2], 69_999.0);
    assert_eq!(expect[3 + 3], 17.0);
    let (xb, out) = (ctx.upload("x", &x), ctx.scratch("argmax", rows + 3));
    let mut enc = ctx.encoder("argmax test");
    ops::argmax_rows(ctx, &mut enc, &xb, rows, width, &out, 3);
    assert_eq!(read(ctx, &[(&out, rows + 3)], enc).remove(0), expect);
}

#[test]
fn gemma_quant_types_match_cpu_matmul() {
    let ctx = ctx();
    // Random bytes with tame f16 scales: every bit pattern of the quants, exact layouts.
    for (ty, block, size, scale_at) in [(GgmlType::Q5_0, 32, 22, &[0usize][..]), (GgmlType::Q4K, 256, 144, &[0, 2]), (GgmlType::Q6K, 256, 210, &[208])] {
        let (rows, cols) = (70, 512);
        let blocks = rows * cols / block;
        let mut data: Vec<u8> = common::values(blocks * size, ty.id() as u64, 1.0).iter().map(|v| ((v + 1.0) * 127.5) as u8).collect();
        for b in 0..blocks {
            for &at in scale_at {
                data[b * size + at..b * size + at + 2].copy_from_slice(&attnlab::model::quant::f32_to_f16(0.01 + 0.001 * (b % 7) as f32).to_le_bytes());
            }
        }
        let t = QTensor::new("w", ty, rows, cols, data).unwrap();
        // 1 and 4 tokens: the gemv paths; 5 and 70: the tiled matmuls (70: two token tiles).
        for n in [1, 4, 5, 70] {
            let x = common::values(n * cols, 41, 1.0);
            let mut expect = vec![0.0; n * rows];
            cpu::matmul_qt(&x, n, &t, &mut expect);
            for gm in [GpuMatrix::upload(ctx, &t), GpuMatrix::upload_with_limit(ctx, &t, 8 * cols)] {
                for kernel in KERNELS {
                    let (xb, yb) = (ctx.upload("x", &x), ctx.scratch("y", n * rows));
                    let mut enc = ctx.encoder("quant test");
                    ops::matmul_with(ctx, kernel, &mut enc, &xb, 0, n, &gm, &yb);
                    let got = read(ctx, &[(&yb, n * rows)], enc).remove(0);
                    let scale = expect.iter().fold(1f32, |m, v| m.max(v.abs()));
                    let err = max_diff(&got, &expect) / scale;
                    assert!(err < 1e-5, "{} {kernel:?} n={n}: relative err {err} ({} parts)", ty.name(), gm.parts.len());
                }
            }
        }
    }
}

/// A (rows, cols) matrix of test values (seeded) quantized to `ty` (Q4_1, Q8_0, Q4_0 or F16).
fn quantized(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> QTensor {
    let w = common::values(rows * cols, seed, 1.0);
    let data = match ty {
        GgmlType::Q4_1 => quantize::q4_1(&w),
        GgmlType::Q8_0 => quantize::q8_0(&w),
        GgmlType::Q4_0 => quantize::q4_0(&w),
        _ => quantize::f16_bytes(&w),
    };
    QTensor::new("w", ty, rows, cols, data).unwrap()
}

/// Both matmul kernels (each with its gemv): every test below runs them side by side.
const KERNELS: [MatmulKernel; 2] = [MatmulKernel::Registers, MatmulKernel::Workgroup];

/// Matmuls read their tokens from row `x_row0` on (the last position's output projection,
/// a window of a longer buffer), on every weight layout, whole and split, with both kernels:
/// the gemv paths (≤ 4 tokens) and the tiled ones (5, 67: a partial tile of 8 × 8 invocations).
#[test]
fn matmuls_read_rows_from_an_offset_and_match_the_cpu() {
    let ctx = ctx();
    for (ty, rows, cols) in [(GgmlType::Q4_1, 515, 576), (GgmlType::Q8_0, 9, 96), (GgmlType::Q4_0, 64, 64), (GgmlType::F16, 3, 64), (GgmlType::F16, 5, 36)] {
        let t = quantized(ty, rows, cols, 11);
        let all = common::values(70 * cols, 12, 1.0);
        for ((row0, n), kernel) in [(6, 1), (3, 3), (2, 4), (1, 5), (3, 67)].into_iter().flat_map(|c| KERNELS.map(|k| (c, k))) {
            let mut y_ref = vec![0.0; n * rows];
            cpu::matmul_qt(&all[row0 * cols..(row0 + n) * cols], n, &t, &mut y_ref);
            for gm in [GpuMatrix::upload(ctx, &t), GpuMatrix::upload_with_limit(ctx, &t, t.row_bytes() * 10)] {
                let (xb, yb) = (ctx.upload("x", &all), ctx.scratch("y", n * rows));
                let mut enc = ctx.encoder("offset test");
                ops::matmul_with(ctx, kernel, &mut enc, &xb, row0, n, &gm, &yb);
                let y = read(ctx, &[(&yb, n * rows)], enc).remove(0);
                let e = max_diff(&y, &y_ref);
                assert!(e < 1e-4, "{} {kernel:?} {rows}x{cols} rows {row0}..{} parts={}: err {e}", ty.name(), row0 + n, gm.parts.len());
            }
        }
    }
}

#[test]
fn quantized_matmul_matches_cpu_on_odd_shapes_and_split_buffers() {
    let ctx = ctx();
    // Rows and tokens on both sides of the register kernel's 64 × 64 tile and the old 64 × 32 one.
    for (ty, rows, cols, n) in [(GgmlType::Q4_1, 65, 96, 1), (GgmlType::Q4_1, 130, 576, 33), (GgmlType::Q8_0, 130, 64, 33), (GgmlType::Q8_0, 7, 32, 70), (GgmlType::Q4_0, 33, 64, 5), (GgmlType::Q4_0, 129, 128, 64), (GgmlType::Q4_0, 63, 64, 129), (GgmlType::F16, 31, 64, 2), (GgmlType::F16, 66, 32, 9), (GgmlType::F16, 9, 44, 11)] {
        let t = quantized(ty, rows, cols, 7);
        let x = common::values(n * cols, 8, 1.0);
        let mut y_ref = vec![0.0; n * rows];
        cpu::matmul_qt(&x, n, &t, &mut y_ref);
        // Whole, and split into parts of ~10 rows (as a tensor over the binding limit is).
        for gm in [GpuMatrix::upload(ctx, &t), GpuMatrix::upload_with_limit(ctx, &t, t.row_bytes() * 10)] {
            for kernel in KERNELS {
                let (xb, yb) = (ctx.upload("x", &x), ctx.scratch("y", n * rows));
                let mut enc = ctx.encoder("matmul test");
                ops::matmul_with(ctx, kernel, &mut enc, &xb, 0, n, &gm, &yb);
                let y = read(ctx, &[(&yb, n * rows)], enc).remove(0);
                let e = max_diff(&y, &y_ref);
                assert!(e < 1e-4, "{} {kernel:?} {rows}x{cols} n={n} parts={}: err {e}", ty.name(), gm.parts.len());
            }
        }
    }
}

fn rms(w: &wgpu::Buffer, eps: f32) -> ops::NormWeights<'_> {
    ops::NormWeights { kind: NormKind::Rms, w, bias: None, eps }
}

/// GPT-2's kernels: LayerNorm with and without bias (plain, in place, fused with the residual
/// add) on rows of 1, 3, 64, 576 and 768 values, rows far from zero mean; a bias on every row;
/// GELU alone; the SiLU alone — each against the CPU engine's.
#[test]
fn layer_norm_bias_and_activation_kernels_match_cpu() {
    let ctx = ctx();
    for (n, d) in [(1, 1), (2, 3), (7, 64), (33, 576), (5, 768)] {
        let x: Vec<f32> = common::values(n * d, 41, 3.0).iter().map(|v| v + 20.0).collect();
        let (w, b, branch) = (common::values(d, 42, 1.0), common::values(d, 43, 1.0), common::values(n * d, 44, 2.0));
        let (xb, wb, bb, brb) = (ctx.upload("x", &x), ctx.upload("w", &w), ctx.upload("b", &b), ctx.upload("branch", &branch));
        for bias in [None, Some(&bb)] {
            let cpu_bias = bias.map(|_| &b[..]);
            let nw = ops::NormWeights { kind: NormKind::Layer, w: &wb, bias, eps: 1e-5 };
            let mut want = vec![0.0; n * d];
            cpu::norm(NormKind::Layer, &x, &w, cpu_bias, 1e-5, &mut want);
            let mut sum = x.clone();
            cpu::add_assign(&mut sum, &branch);
            let mut want_sum = vec![0.0; n * d];
            cpu::norm(NormKind::Layer, &sum, &w, cpu_bias, 1e-5, &mut want_sum);
            let (y, inplace, resid, y2) = (ctx.scratch("y", n * d), ctx.upload("in place", &x), ctx.upload("residual", &x), ctx.scratch("y2", n * d));
            let mut enc = ctx.encoder("layer norm");
            ops::norm(ctx, &mut enc, &nw, &xb, &y, n, d);
            ops::norm_in_place(ctx, &mut enc, &nw, &inplace, n, d);
            ops::add_norm(ctx, &mut enc, &resid, &brb, &nw, &y2, n, d);
            let out = read(ctx, &[(&y, n * d), (&inplace, n * d), (&y2, n * d)], enc);
            let tol = 1e-5 * 8.0;
            assert!(max_diff(&out[0], &want) < tol, "n={n} d={d} bias={}: {}", bias.is_some(), max_diff(&out[0], &want));
            assert!(max_diff(&out[1], &want) < tol, "in place n={n} d={d}");
            assert!(max_diff(&out[2], &want_sum) < tol, "add + norm n={n} d={d}: {}", max_diff(&out[2], &want_sum));
        }
        let mut want_bias = x.clone();
        cpu::add_bias(&mut want_bias, &b);
        let (mut want_gelu, mut want_silu) = (branch.clone(), branch.clone());
        cpu::activate(Act::GeluTanh, &mut want_gelu);
        cpu::activate(Act::Silu, &mut want_silu);
        let (ab, gb, sb) = (ctx.upload("biased", &x), ctx.upload("gelu", &branch), ctx.upload("silu", &branch));
        let mut enc = ctx.encoder("bias and activations");
        ops::add_bias(ctx, &mut enc, &ab, &bb, n * d, d);
        ops::activate(ctx, &mut enc, Act::GeluTanh, &gb, n * d);
        ops::activate(ctx, &mut enc, Act::Silu, &sb, n * d);
        let out = read(ctx, &[(&ab, n * d), (&gb, n * d), (&sb, n * d)], enc);
        assert_eq!(out[0], want_bias, "bias n={n} d={d}");
        assert!(max_diff(&out[1], &want_gelu) < 1e-5, "gelu {}", max_diff(&out[1], &want_gelu));
        assert!(max_diff(&out[2], &want_silu) < 1e-5, "silu {}", max_diff(&out[2], &want_silu));
    }
}

/// Flash attention of new queries over a KV cache (past > 0): against the CPU engine's same
/// call, which its own tests hold to a triple-loop reference; decode steps (one query),
/// several at once, windows, GQA, MQA at head 256, a cache with room to spare; and RoPE tables
/// that start mid-text.
#[test]
fn flash_over_a_kv_cache_and_rope_from_a_start_position_match_the_cpu() {
    let ctx = ctx();
    for (n, past, n_head, n_kv, hd, window) in [(1, 0, 4, 2, 64, None), (1, 40, 4, 2, 64, None), (3, 97, 9, 3, 64, None), (1, 700, 4, 1, 256, Some(512)), (20, 130, 4, 4, 64, Some(64)), (65, 65, 4, 1, 256, None)] {
        let total = past + n;
        let shape = AttnShape { n, past, n_head, n_kv, head_dim: hd, window, ..Default::default() };
        let q = common::values(n * n_head * hd, 51, 2.0);
        let k = common::values((total + 3) * n_kv * hd, 52, 2.0);
        let v = common::values((total + 3) * n_kv * hd, 53, 1.0);
        let (mut o_ref, mut lse_ref) = (vec![0.0; n * n_head * hd], vec![0.0; n * n_head]);
        cpu::causal_attention(shape, &q, &k, &v, &mut o_ref, &mut lse_ref);
        let (qb, kb, vb) = (ctx.upload("q", &q), ctx.upload("k cache", &k), ctx.upload("v cache", &v));
        let (o, l) = (ctx.scratch("o", q.len()), ctx.scratch("lse", n * n_head));
        let mut enc = ctx.encoder("cache attention");
        ops::flash_attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o, &l);
        let out = read(ctx, &[(&o, q.len()), (&l, n * n_head)], enc);
        let (eo, el) = (max_diff(&out[0], &o_ref), max_diff(&out[1], &lse_ref));
        assert!(eo < 1e-5 && el < 1e-4, "n={n} past={past} w={window:?}: out err {eo}, lse err {el}");
    }
    for (start, n) in [(0, 5), (1, 1), (37, 4), (8000, 2)] {
        let x = common::values(n * 2 * 64, 54, 1.0);
        for style in [RopeStyle::Adjacent, RopeStyle::Halves] {
            let mut want = x.clone();
            cpu::rope(&mut want, 2, 64, 64, 10000.0, start, style);
            let (xb, table) = (ctx.upload("x", &x), ctx.upload("table", &ops::rope_table(start, n, 64, 10000.0)));
            let mut enc = ctx.encoder("rope from start");
            ops::rope(ctx, &mut enc, &xb, &table, n, 2, 64, 64, style);
            let out = read(ctx, &[(&xb, x.len())], enc);
            assert!(max_diff(&out[0], &want) < 1e-5, "rope start={start} {style:?}");
        }
    }
}

#[test]
fn small_kernels_match_cpu() {
    let ctx = ctx();
    let (n, d) = (33, 576);
    let x = common::values(n * d, 11, 3.0);
    let w = common::values(d, 12, 1.0);
    let mut ref_norm = vec![0.0; n * d];
    cpu::rms_norm(&x, &w, 1e-5, &mut ref_norm);
    let mut ref_rope = x.clone();
    cpu::rope(&mut ref_rope, 9, 64, 64, 100000.0, 0, RopeStyle::Adjacent);
    let mut ref_halves = x.clone();
    cpu::rope(&mut ref_halves, 9, 64, 64, 100000.0, 0, RopeStyle::Halves);
    let mut ref_geglu = x.clone();
    cpu::geglu_tanh(&mut ref_geglu, &w.iter().cycle().take(n * d).copied().collect::<Vec<_>>());
    let (xb, wb, yb) = (ctx.upload("x", &x), ctx.upload("w", &w), ctx.scratch("y", n * d));
    let rb = ctx.upload("x rope", &x);
    let hb = ctx.upload("x rope halves", &x);
    let gb = ctx.upload("x geglu", &x);
    let ub = ctx.upload("up", &w.iter().cycle().take(n * d).copied().collect::<Vec<_>>());
    let table = ctx.upload("table", &ops::rope_table(0, n, 64, 100000.0));
    let mut enc = ctx.encoder("small kernels");
    ops::norm(ctx, &mut enc, &rms(&wb, 1e-5), &xb, &yb, n, d);
    ops::rope(ctx, &mut enc, &rb, &table, n, 9, 64, 64, RopeStyle::Adjacent);
    ops::rope(ctx, &mut enc, &hb, &table, n, 9, 64, 64, RopeStyle::Halves);
    ops::geglu(ctx, &mut enc, &gb, &ub, n * d);
    let out = read(ctx, &[(&yb, n * d), (&rb, n * d), (&hb, n * d), (&gb, n * d)], enc);
    assert!(max_diff(&out[0], &ref_norm) < 1e-5);
    assert!(max_diff(&out[1], &ref_rope) < 1e-5);
    assert!(max_diff(&out[2], &ref_halves) < 1e-5);
    assert!(max_diff(&out[3], &ref_geglu) < 1e-4, "geglu err {}", max_diff(&out[3], &ref_geglu));

    // The fused norms: in place over 64-wide rows (Gemma's per-head QK-norm), and the residual
    // add with the norm after it (both outputs: the updated residual and the normed rows).
    let (hw, branch) = (common::values(64, 13, 1.0), common::values(n * d, 14, 2.0));
    let mut ref_in_place = x.clone();
    cpu::rms_norm_in_place(&mut ref_in_place, &hw, 1e-6);
    let (mut ref_sum, mut ref_sum_norm) = (x.clone(), vec![0.0; n * d]);
    cpu::add_assign(&mut ref_sum, &branch);
    cpu::rms_norm(&ref_sum, &w, 1e-5, &mut ref_sum_norm);
    let (ib, hwb) = (ctx.upload("x in place", &x), ctx.upload("head w", &hw));
    let (sb, bb, nb) = (ctx.upload("residual", &x), ctx.upload("branch", &branch), ctx.scratch("normed", n * d));
    let mut enc = ctx.encoder("fused norms");
    ops::norm_in_place(ctx, &mut enc, &rms(&hwb, 1e-6), &ib, n * 9, 64);
    ops::add_norm(ctx, &mut enc, &sb, &bb, &rms(&wb, 1e-5), &nb, n, d);
    let out = read(ctx, &[(&ib, n * d), (&sb, n * d), (&nb, n * d)], enc);
    assert!(max_diff(&out[0], &ref_in_place) < 1e-5, "in place {}", max_diff(&out[0], &ref_in_place));
    assert_eq!(out[1], ref_sum, "the residual after the add");
    assert!(max_diff(&out[2], &ref_sum_norm) < 1e-5, "add + norm {}", max_diff(&out[2], &ref_sum_norm));
}

#[test]
fn gpu_forward_matches_cpu_on_tiny_models_and_the_reference_on_the_real_one() {
    let backend = GpuBackend::with_context(GpuContext::new_blocking().expect("GPU adapter"));
    // Tiny random model: edge sizes, GPU vs CPU.
    let tiny = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    for n in [1usize, 2, 31, 32, 33, 65] {
        let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 13) % 261).collect();
        let g = backend.forward(&tiny, &ids, &ForwardOptions::default()).unwrap();
        let c = CpuBackend::new().forward(&tiny, &ids, &ForwardOptions::default()).unwrap();
        let e = g.logits.iter().zip(c.logits.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(e < 1e-3, "n={n}: logits differ by {e}");
        let (gt, ct) = (g.trace.unwrap(), c.trace.unwrap());
        for l in 0..gt.n_layer {
            assert!(max_diff(&gt.layers[l].lse, &ct.layers[l].lse) < 1e-4, "n={n} layer {l} lse");
        }
    }

    // The real model against transformers: the same bars as issue #3 sets.
    let model = common::real_model();
    let reference: serde_json::Value = serde_json::from_str(include_str!("data/forward.json")).unwrap();
    for case in reference["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let report = attnlab::inspect(&model, &backend, text, &attnlab::HeadSelection::All).unwrap();
        assert_eq!(report.backend, "gpu");
        let mut worst = 0.0f64;
        for (l, heads) in case["attention"].as_array().unwrap().iter().enumerate() {
            for (h, rows) in heads.as_array().unwrap().iter().enumerate() {
                for (i, row) in rows.as_array().unwrap().iter().enumerate() {
                    for (j, p) in row.as_array().unwrap().iter().enumerate() {
                        worst = worst.max((report.attention[&format!("{l}.{h}")][i][j] as f64 - p.as_f64().unwrap()).abs());
                    }
                }
            }
        }
        assert!(worst <= 5e-4, "{text}: attention diff {worst}");
        let ours: std::collections::HashMap<u32, f32> = report.last_logits_top.iter().copied().collect();
        for p in case["last_logits_top64"].as_array().unwrap() {
            let id = p[0].as_u64().unwrap() as u32;
            let got = *ours.get(&id).unwrap_or_else(|| panic!("{text}: id {id} not in our top 64")) as f64;
            assert!((got - p[1].as_f64().unwrap()).abs() <= 2e-2, "{text}: logit {id}");
        }
        let argmax: Vec<u32> = case["argmax_per_position"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(report.argmax_per_position, argmax, "{text}");
    }
}

#[test]
fn gpu_attention_maps_match_the_cpu_trace() {
    let backend = GpuBackend::with_context(GpuContext::new_blocking().expect("GPU adapter"));
    let tiny = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let n = 65;
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 31 + 7) % 261).collect();
    let trace = backend.forward(&tiny, &ids, &ForwardOptions::default()).unwrap().trace.unwrap();
    for (layer, head) in [(0, 0), (1, 3)] {
        let probs = backend.head_probs(layer, head).unwrap();
        let rows = trace.head_rows(layer, head).unwrap();
        for i in 0..n {
            for j in 0..n {
                let expect = if j <= i { rows[i][j] } else { 0.0 };
                assert!((probs[i * n + j] - expect).abs() < 1e-5, "{layer}.{head} [{i}][{j}]");
            }
        }
        let gp = backend.head_pooled(layer, head, 8).unwrap();
        let cp = trace.pooled(layer, head, 8).unwrap();
        assert_eq!(gp.side, cp.side);
        assert!(max_diff(&gp.max, &cp.max) < 1e-5);
        for (a, b) in gp.mean.iter().zip(&cp.mean) {
            assert!((a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-5);
        }
        let mass = backend.row_mass(layer, 0..1).unwrap();
        let sink = mass[head * n + 1..(head + 1) * n].iter().sum::<f32>() / (n - 1) as f32;
        assert!((sink - trace.sink_mass(layer, head, 1).unwrap().unwrap()).abs() < 1e-5);
        let span = backend.row_mass(layer, 10..20).unwrap();
        let gpu_span = (span[head * n + 30] + span[head * n + 64]) / 2.0;
        assert!((gpu_span - trace.span_mass(layer, head, [30, 64], 10..20).unwrap().unwrap()).abs() < 1e-5);
    }
    assert!(backend.head_probs(0, 99).is_err());
}

#[test]
fn embedding_gather_works_across_split_parts() {
    let ctx = ctx();
    let (vocab, d) = (70, 64);
    let w = common::values(vocab * d, 21, 1.0);
    let t = QTensor::new("token_embd.weight", GgmlType::Q8_0, vocab, d, quantize::q8_0(&w)).unwrap();
    let reference = t.to_f32();
    let ids: Vec<u32> = vec![0, 9, 10, 11, 35, 69, 9];
    for gm in [GpuMatrix::upload(ctx, &t), GpuMatrix::upload_with_limit(ctx, &t, t.row_bytes() * 10)] {
        let (ib, out) = (ctx.upload("ids", &ids), ctx.scratch("embedded", ids.len() * d));
        let mut enc = ctx.encoder("embed test");
        ops::embed(ctx, &mut enc, &ib, ids.len(), &gm, 1.0, &out);
        let got = read(ctx, &[(&out, ids.len() * d)], enc).remove(0);
        for (k, &id) in ids.iter().enumerate() {
            assert_eq!(&got[k * d..(k + 1) * d], &reference[id as usize * d..(id as usize + 1) * d], "id {id}, {} parts", gm.parts.len());
        }
    }
}

#[test]
fn the_self_check_passes_on_a_working_gpu_and_catches_a_broken_one() {
    use attnlab::backends::engine::{agree, Engine, SELF_CHECK_TEXT};
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let ids = model.tokenizer.encode(SELF_CHECK_TEXT);
    let engine = Engine::with_gpu(GpuBackend::with_context(GpuContext::new_blocking().expect("an adapter (lavapipe on CI)")));
    pollster::block_on(engine.self_check(&model, &ids)).expect("lavapipe agrees with the CPU");
    assert!(engine.gpu().is_some() && engine.take_note().is_none());
    // A GPU whose numbers are off is caught, whichever part is off.
    let opts = ForwardOptions { logits_for: attnlab::backends::LogitsFor::Last, ..Default::default() };
    let cpu = CpuBackend::new().forward(&model, &ids, &opts).unwrap();
    let mut bad = CpuBackend::new().forward(&model, &ids, &opts).unwrap();
    assert!(agree(&bad, &cpu).is_ok());
    bad.logits[[0, 5]] += 1.0;
    assert!(agree(&bad, &cpu).unwrap_err().contains("last logits"));
    let mut bad = CpuBackend::new().forward(&model, &ids, &opts).unwrap();
    bad.logits[[0, 5]] = f32::NAN;
    assert!(agree(&bad, &cpu).is_err());
    let mut bad = CpuBackend::new().forward(&model, &ids, &opts).unwrap();
    let t = bad.trace.as_mut().unwrap();
    t.layers[1].q.iter_mut().for_each(|v| *v *= 3.0);
    assert!(agree(&bad, &cpu).unwrap_err().contains("attention of layer 1"));
}

#[test]
fn a_profiled_forward_times_every_dispatch() {
    use attnlab::backends::gpu::profile::summarise;
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().expect("an adapter (lavapipe on CI)"));
    assert!(gpu.ctx.timestamps, "{} offers no timestamp queries (lavapipe does)", gpu.ctx.describe());
    gpu.prepare(&model);
    let ids = model.tokenizer.encode("the cat ab the dog");
    let opts = ForwardOptions { capture_attention: false, logits_for: attnlab::backends::LogitsFor::Last, ..Default::default() };
    let plain = gpu.forward(&model, &ids, &opts).unwrap();
    assert!(gpu.ctx.start_profile());
    let profiled = gpu.forward(&model, &ids, &opts).unwrap();
    let timed = gpu.ctx.finish_profile().unwrap();
    // Profiling changes no number.
    assert_eq!(plain.logits, profiled.logits);
    // Two layers: at least Q, K, V, O and three FFN matmuls each, attention, norms.
    assert!(timed.len() >= 2 * 9, "{} dispatches", timed.len());
    assert!(timed.iter().all(|t| t.ms >= 0.0 && t.ms.is_finite()) && timed.iter().map(|t| t.ms).sum::<f64>() > 0.0);
    let rows = summarise(&timed);
    let attn = rows.iter().find(|r| r.kernel == "flash attention").expect("attention is profiled");
    assert_eq!(attn.calls, 2);
    assert!(rows.iter().any(|r| r.kernel == "matmul ffn_up" && r.calls == 2 && r.gflop_per_s.is_some()));
    assert!((rows.iter().map(|r| r.share).sum::<f64>() - 1.0).abs() < 1e-9);
    // After finishing, nothing more is timed.
    gpu.forward(&model, &ids, &opts).unwrap();
    assert!(gpu.ctx.finish_profile().unwrap().is_empty());
}

#[test]
fn gpu_weights_are_cached_by_content_not_by_name_and_size() {
    let a = common::tiny_model_bytes(&common::TinySpec::default());
    // The same file with weights changed near its end (bit 0 of every 4th byte: never a NaN).
    let mut b = a.clone();
    let len = b.len();
    for i in (len - 8192..len).filter(|i| i % 4 == 0) {
        b[i] ^= 1;
    }
    let (ma, mb) = (attnlab::Model::from_gguf_bytes(&a).unwrap(), attnlab::Model::from_gguf_bytes(&b).unwrap());
    assert_eq!((&ma.info.name, ma.info.weight_bytes), (&mb.info.name, mb.info.weight_bytes));
    assert_ne!(ma.info.content_hash, mb.info.content_hash);
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().expect("an adapter (lavapipe on CI)"));
    let ids = ma.tokenizer.encode("the cat ab the dog");
    let opts = ForwardOptions { capture_attention: false, logits_for: attnlab::backends::LogitsFor::Last, ..Default::default() };
    let ga = gpu.forward(&ma, &ids, &opts).unwrap();
    let gb = gpu.forward(&mb, &ids, &opts).unwrap();
    let cb = CpuBackend::new().forward(&mb, &ids, &opts).unwrap();
    assert!(max_diff(ga.logits.as_slice().unwrap(), gb.logits.as_slice().unwrap()) > 1e-4, "the second file's weights were uploaded");
    assert!(max_diff(gb.logits.as_slice().unwrap(), cb.logits.as_slice().unwrap()) < 1e-3);
}

#[test]
fn a_destroyed_device_mid_session_finishes_on_the_cpu_and_says_so() {
    use attnlab::backends::engine::Engine;
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let ids = model.tokenizer.encode("the cat ab the dog the cat");
    let opts = ForwardOptions::default();
    let engine = Engine::with_gpu(GpuBackend::with_context(GpuContext::new_blocking().expect("an adapter (lavapipe on CI)")));
    let first = pollster::block_on(engine.forward_async(&model, &ids, &opts)).unwrap();
    assert_eq!(first.backend, "gpu");
    // The device goes away (a driver reset, a tab in the background too long).
    engine.gpu().unwrap().ctx.device.destroy();
    let after = pollster::block_on(engine.forward_async(&model, &ids, &opts)).expect("the CPU finishes the run");
    assert_eq!(after.backend, "cpu");
    assert!(engine.gpu().is_none(), "the GPU is dropped for the rest of the session");
    let note = engine.take_note().expect("the engine says why");
    assert!(note.contains("GPU failed"), "{note}");
    let cpu = CpuBackend::new().forward(&model, &ids, &opts).unwrap();
    assert_eq!(after.logits, cpu.logits, "equal to the plain CPU run");
    let (ta, tc) = (after.trace.unwrap(), cpu.trace.unwrap());
    assert_eq!(ta.row(1, 2, 5).unwrap(), tc.row(1, 2, 5).unwrap());
}

/// The lost-in-the-middle loop (as `attnlab position` and the worker run it): the device lost
/// after the first trial, the rest finish on the CPU with the CPU's own scores, and the trial
/// already done is kept.
#[test]
fn a_device_lost_mid_experiment_keeps_the_trials_and_finishes_on_the_cpu() {
    use attnlab::analysis::position::{kv_trials, score};
    use attnlab::backends::engine::Engine;
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap();
    let trials: Vec<_> = kv_trials(4, 2, 2, 7).unwrap().into_iter().flat_map(|(_, t)| t).collect();
    assert!(trials.len() >= 3);
    let engine = Engine::with_gpu(GpuBackend::with_context(GpuContext::new_blocking().expect("an adapter (lavapipe on CI)")));
    let cpu = CpuBackend::new();
    let mut scores = vec![score(&model, &engine, &trials[0]).unwrap()];
    engine.gpu().unwrap().ctx.device.destroy();
    for t in &trials[1..] {
        scores.push(score(&model, &engine, t).expect("the CPU finishes the experiment"));
    }
    assert!(engine.take_note().is_some_and(|n| n.contains("GPU failed")));
    for (i, (s, t)) in scores.iter().zip(&trials).enumerate() {
        let c = score(&model, &cpu, t).unwrap();
        let tol = if i == 0 { 1e-3 } else { 0.0 };
        assert!((s.gold_logprob - c.gold_logprob).abs() <= tol, "trial {i}: {} vs {}", s.gold_logprob, c.gold_logprob);
        assert_eq!(s.n_tokens, c.n_tokens);
    }
}

/// A whole 4096-token context on lavapipe (a tiny model, so CI can afford it): finite, and the
/// CPU's numbers — the GPU's long loops leave no row unwritten.
#[test]
fn a_full_context_on_the_gpu_matches_the_cpu() {
    let spec = common::TinySpec { context: 4096, ..Default::default() };
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&spec)).unwrap();
    let n = 4096;
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 31 + 7) % 261).collect();
    let opts = ForwardOptions { logits_for: attnlab::backends::LogitsFor::Last, ..Default::default() };
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().expect("an adapter (lavapipe on CI)")).forward(&model, &ids, &opts).unwrap();
    let cpu = CpuBackend::new().forward(&model, &ids, &opts).unwrap();
    assert!(gpu.logits.iter().all(|v| v.is_finite()));
    assert!(max_diff(gpu.logits.as_slice().unwrap(), cpu.logits.as_slice().unwrap()) < 1e-3);
    let (tg, tc) = (gpu.trace.unwrap(), cpu.trace.unwrap());
    for (layer, head, q) in [(0, 0, 0), (1, 3, 2047), (1, 1, n - 1)] {
        assert!(max_diff(&tg.row(layer, head, q).unwrap(), &tc.row(layer, head, q).unwrap()) < 1e-4, "{layer}.{head} row {q}");
    }
}

/// Flash-decoding (a step of 1 to 4 queries over a long cache: the keys split into chunks of
/// 256, one workgroup each, merged by a second pass) against the CPU engine: caches on either
/// side of a chunk edge (1, 255, 256, 257 keys), 1000 and 4097 (past 4096), one query and the
/// most the path takes, SmolLM2's GQA (9 heads over 3, head 64) and Gemma 3's MQA (head 256),
/// sliding windows of 512 over 1000 and 4097 keys and windows shorter than a chunk (the first
/// chunks are never read, a query's window starts mid-chunk), a cache with rows to spare, and
/// 1 to 4 query heads per workgroup. The model's pass takes this path from 256 keys on.
#[test]
fn flash_decoding_over_long_caches_matches_the_cpu() {
    let ctx = ctx();
    let most = ops::DECODE_MAX_N as usize;
    let mut cases = vec![];
    for kv in [1, 255, 256, 257, 1000, 4097] {
        for n in [1, most].into_iter().filter(|&n| n <= kv) {
            cases.push((n, kv, 9, 3, 64, None));
            cases.push((n, kv, 4, 1, 256, None));
        }
    }
    cases.extend([(1, 1000, 9, 3, 64, Some(512)), (most, 1000, 4, 1, 256, Some(512)), (1, 4097, 4, 1, 256, Some(512)), (3, 1000, 9, 3, 64, Some(100)), (2, 513, 8, 2, 128, Some(300)), (1, 300, 4, 4, 32, Some(1))]);
    let mut heads_per_workgroup = std::collections::BTreeSet::new();
    for (n, kv, n_head, n_kv, hd, window) in cases {
        let shape = AttnShape { n, past: kv - n, n_head, n_kv, head_dim: hd, window, ..Default::default() };
        assert_eq!(ops::splits_decode(shape), kv >= ops::DECODE_MIN_KEYS);
        heads_per_workgroup.insert(ops::decode_heads_per_workgroup(shape));
        let q = common::values(n * n_head * hd, 61, 2.0);
        let k = common::values((kv + 3) * n_kv * hd, 62, 2.0);
        let v = common::values((kv + 3) * n_kv * hd, 63, 1.0);
        let (mut o_ref, mut lse_ref) = (vec![0.0; n * n_head * hd], vec![0.0; n * n_head]);
        cpu::causal_attention(shape, &q, &k, &v, &mut o_ref, &mut lse_ref);
        let (qb, kb, vb) = (ctx.upload("q", &q), ctx.upload("k cache", &k), ctx.upload("v cache", &v));
        let (o, l) = (ctx.scratch("o", q.len()), ctx.scratch("lse", n * n_head));
        let mut enc = ctx.encoder("flash-decoding");
        ops::decode_attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o, &l);
        let out = read(ctx, &[(&o, q.len()), (&l, n * n_head)], enc);
        let (eo, el) = (max_diff(&out[0], &o_ref), max_diff(&out[1], &lse_ref));
        assert!(eo < 1e-5 && el < 1e-4, "n={n} keys={kv} heads {n_head}/{n_kv} hd={hd} w={window:?}: out err {eo}, lse err {el}");
    }
    // Workgroups of 1 to 4 query heads sharing each key (SmolLM2's 3 at n = 1, Gemma's 4).
    assert_eq!(heads_per_workgroup.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
}

/// Cache policies and what-ifs inside the kernels: sinks kept beside a window, key 0 hidden,
/// no causal mask (keys after the query too), another scale — in prefills (flash, first tile
/// mid-way through a cache) and decoding steps (flash-decoding over chunks wholly outside the
/// window), GQA at head 64 and MQA at head 256, against the CPU's attention under the same rule.
#[test]
fn key_rules_in_flash_and_flash_decoding_match_the_cpu() {
    use attnlab::model::arch::KeyRule;
    let ctx = ctx();
    let rules = [
        (KeyRule { sinks: 4, ..Default::default() }, Some(100)),
        (KeyRule { sinks: 1, ..Default::default() }, Some(1)),
        (KeyRule { hide_first: true, ..Default::default() }, None),
        (KeyRule { hide_first: true, ..Default::default() }, Some(64)),
        (KeyRule { unmasked: true, ..Default::default() }, None),
        (KeyRule { unmasked: true, score_dim: Some(1), ..Default::default() }, Some(64)),
        (KeyRule { score_dim: Some(576), ..Default::default() }, None),
        (KeyRule { score_dim: Some(1), ..Default::default() }, None),
    ];
    let mut decoded = 0;
    for (keys, window) in rules {
        for (n, past, n_head, n_kv, hd) in [(1, 0, 9, 3, 64), (70, 0, 9, 3, 64), (300, 0, 4, 1, 256), (40, 200, 9, 3, 64), (1, 999, 9, 3, 64), (4, 1300, 4, 1, 256)] {
            let shape = AttnShape { n, past, n_head, n_kv, head_dim: hd, window, keys };
            let kv = past + n;
            let q = common::values(n * n_head * hd, 81, 2.0);
            let k = common::values(kv * n_kv * hd, 82, 2.0);
            let v = common::values(kv * n_kv * hd, 83, 1.0);
            let (mut o_ref, mut lse_ref) = (vec![0.0; n * n_head * hd], vec![0.0; n * n_head]);
            cpu::causal_attention(shape, &q, &k, &v, &mut o_ref, &mut lse_ref);
            let (qb, kb, vb) = (ctx.upload("q", &q), ctx.upload("k", &k), ctx.upload("v", &v));
            let (o, l) = (ctx.scratch("o", q.len()), ctx.scratch("lse", n * n_head));
            let mut enc = ctx.encoder("key rules");
            decoded += ops::splits_decode(shape) as usize;
            ops::attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o, &l);
            let out = read(ctx, &[(&o, q.len()), (&l, n * n_head)], enc);
            // Unscaled scores are √hd times larger, and so is their rounding.
            let grow = (shape.scale() * (hd as f32).sqrt()).max(1.0);
            let (eo, el) = (max_diff(&out[0], &o_ref), max_diff(&out[1], &lse_ref));
            assert!(eo < 1e-5 * grow && el < 1e-4 * grow, "{keys:?} window {window:?}, n={n} past={past} head {hd}: out err {eo}, lse err {el}");
        }
    }
    assert_eq!(decoded, 2 * 8, "the two decoding steps of each rule take flash-decoding");
}

/// One query over caches longer than one invocation can walk on lavapipe, which stops an
/// invocation after 65 535 loop iterations and keeps what it has: the flash kernel, whose
/// invocations walk every key, stops after ~16 380 keys at head 256 and ~26 000 at head 64
/// (measured: its LSE comes out 0.21 and 0.14 low at the lengths below), flash-decoding's walk
/// one chunk. Against the CPU's numbers, through the op the model's pass records.
#[test]
fn flash_decoding_past_the_loop_limit_of_one_invocation_matches_the_cpu() {
    let ctx = ctx();
    for (kv, n_head, n_kv, hd) in [(20_000, 4, 1, 256), (30_000, 9, 3, 64)] {
        let n = 1;
        let shape = AttnShape { n, past: kv - n, n_head, n_kv, head_dim: hd, window: None, ..Default::default() };
        let q = common::values(n * n_head * hd, 71, 2.0);
        let k = common::values(kv * n_kv * hd, 72, 2.0);
        let v = common::values(kv * n_kv * hd, 73, 1.0);
        let (mut o_ref, mut lse_ref) = (vec![0.0; n * n_head * hd], vec![0.0; n * n_head]);
        cpu::causal_attention(shape, &q, &k, &v, &mut o_ref, &mut lse_ref);
        let (qb, kb, vb) = (ctx.upload("q", &q), ctx.upload("k cache", &k), ctx.upload("v cache", &v));
        let (o, l) = (ctx.scratch("o", q.len()), ctx.scratch("lse", n * n_head));
        let mut enc = ctx.encoder("flash-decoding, long");
        ops::attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o, &l);
        let out = read(ctx, &[(&o, q.len()), (&l, n * n_head)], enc);
        let (eo, el) = (max_diff(&out[0], &o_ref), max_diff(&out[1], &lse_ref));
        assert!(eo < 1e-5 && el < 1e-4, "{kv} keys, head {hd}: out err {eo}, lse err {el}");
    }
}

/// A tiny model's prefill of 600 tokens, then decoding steps over the cache it left (single
/// tokens, and one step of the most tokens flash-decoding takes), with and without a sliding
/// window of 300 on the second layer: every step's logits and log-sum-exps equal one CPU pass
/// over the whole text, and the GPU's steps take flash-decoding.
#[test]
fn decoding_steps_over_a_long_cache_equal_one_cpu_pass() {
    let spec = common::TinySpec { context: 2048, ..Default::default() };
    let bytes = common::tiny_model_bytes(&spec);
    let backend = GpuBackend::with_context(GpuContext::new_blocking().expect("GPU adapter"));
    let (prefill, most) = (600, ops::DECODE_MAX_N as usize);
    let parts: Vec<usize> = [prefill, 1, 1, most, 1, 1].into();
    let n: usize = parts.iter().sum();
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 13) % 261).collect();
    for window in [None, Some(300)] {
        let tiny = attnlab::Model::from_gguf_bytes(&bytes).unwrap();
        let mut config = tiny.config.clone();
        config.layer_window[1] = window;
        let m = attnlab::Model { config, ..tiny };
        let opts = ForwardOptions::default(); // every position's logits, Q and LSE captured
        let whole = CpuBackend::new().forward(&m, &ids, &opts).unwrap();
        let trace = whole.trace.as_ref().unwrap();
        let c = &m.config;
        let mut cache = backend.new_cache(&m, n);
        let mut at = 0;
        for len in parts.iter().copied() {
            let step = pollster::block_on(backend.step_async(&m, &ids[at..at + len], &mut cache, &opts)).unwrap();
            if at > 0 {
                let shape = AttnShape { n: len, past: at, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: c.head_dim, window, ..Default::default() };
                assert!(ops::splits_decode(shape), "a step of {len} after {at} takes flash-decoding");
            }
            for r in 0..len {
                let e = max_diff(step.logits.row(r).as_slice().unwrap(), whole.logits.row(at + r).as_slice().unwrap());
                assert!(e < 1e-3, "w={window:?} at {}: logits differ by {e}", at + r);
            }
            for (l, (_, lse)) in step.rows.iter().enumerate() {
                let e = max_diff(lse, &trace.layers[l].lse[at * c.n_head..(at + len) * c.n_head]);
                assert!(e < 1e-4, "w={window:?} layer {l} at {at} (+{len}): lse differs by {e}");
            }
            at += len;
        }
        assert_eq!(cache.len, n);
    }
}

/// Not a check: milliseconds per decoding step of SmolLM2-135M over caches of 64, 512 and
/// 2048 tokens, the flash kernel alone against flash-decoding (docs/BENCHMARKS.md). Each
/// figure is the median of 8 steps from the same cache length, the two kernels taking turns
/// (after a warm-up step each); and, where the adapter has timestamps, the GPU time of a
/// step's attention dispatches (all layers; the median of 3 steps). Below 256 keys both run
/// the flash kernel. Then the attention op alone at SmolLM2's and Gemma 3's shapes.
/// `WGPU_BACKEND=vulkan cargo test --release --test gpu decode_step_ms -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark"]
fn decode_step_ms_flash_against_flash_decoding() {
    use attnlab::backends::LogitsFor;
    let model = common::real_model();
    let gpu = GpuBackend::with_context(GpuContext::new_blocking().expect("GPU adapter"));
    println!("adapter: {}", gpu.ctx.describe());
    let text = "The quick brown fox jumps over the lazy dog while the cat watches from the warm window. ".repeat(200);
    let ids = model.tokenizer.encode(&text);
    let opts = ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, ..Default::default() };
    let steps = 8;
    println!("| cache | flash: ms/step | flash-decoding: ms/step | speed-up | attention ms/step, flash | attention ms/step, flash-decoding | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    for len in [64, 512, 2048] {
        let mut cache = gpu.new_cache(&model, len + 2);
        pollster::block_on(gpu.step_async(&model, &ids[..len], &mut cache, &opts)).unwrap();
        let mut step = |split: bool| {
            gpu.ctx.set_split_decode(split);
            cache.truncate(len);
            let clock = attnlab::util::Clock::start();
            pollster::block_on(gpu.step_async(&model, &ids[len..len + 1], &mut cache, &opts)).unwrap();
            clock.ms()
        };
        step(false); // pipelines
        step(true);
        let mut ms = [vec![], vec![]];
        for _ in 0..steps {
            for split in [false, true] {
                ms[split as usize].push(step(split));
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (flash, split) = (median(&mut ms[0]), median(&mut ms[1]));
        let attn: Vec<Option<f64>> = [false, true]
            .into_iter()
            .map(|split| {
                let mut each: Vec<f64> = (0..3)
                    .map_while(|_| {
                        gpu.ctx.start_profile().then(|| {
                            step(split);
                            gpu.ctx.finish_profile().unwrap().iter().filter(|t| t.label.contains("attention")).map(|t| t.ms).sum::<f64>()
                        })
                    })
                    .collect();
                (!each.is_empty()).then(|| median(&mut each))
            })
            .collect();
        gpu.ctx.set_split_decode(true);
        let (a0, a1) = match (attn[0], attn[1]) {
            (Some(a), Some(b)) => (format!("{a:.1}"), format!("{b:.1} | {:.2}×", a / b)),
            _ => ("–".into(), "– | –".into()),
        };
        println!("| {len} | {flash:.0} | {split:.0} | {:.2}× | {a0} | {a1} |", flash / split);
    }

    // The attention op alone, one query on random inputs shaped like SmolLM2 (9 heads over 3,
    // head 64) and Gemma 3 270M (4 over 1, head 256): 30 calls in one submission, best of 3.
    let ctx = &gpu.ctx;
    println!("\n| heads, head size | keys | flash ms/call | flash-decoding ms/call | speed-up |");
    println!("|---|---|---|---|---|");
    for (n_head, n_kv, hd) in [(9, 3, 64), (4, 1, 256)] {
        for kv in [256, 512, 2048, 8192] {
            let shape = AttnShape { n: 1, past: kv - 1, n_head, n_kv, head_dim: hd, window: None, ..Default::default() };
            let (qb, kb, vb) = (ctx.upload("q", &common::values(n_head * hd, 81, 2.0)), ctx.upload("k", &common::values(kv * n_kv * hd, 82, 2.0)), ctx.upload("v", &common::values(kv * n_kv * hd, 83, 1.0)));
            let (o, l) = (ctx.scratch("o", n_head * hd), ctx.scratch("lse", n_head));
            let time = |split: bool| {
                let run = |calls: usize| {
                    let mut enc = ctx.encoder("bench decode attention");
                    for _ in 0..calls {
                        if split {
                            ops::decode_attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o, &l)
                        } else {
                            ops::flash_attention(ctx, &mut enc, shape, &qb, &kb, &vb, &o, &l)
                        }
                    }
                    let clock = attnlab::util::Clock::start();
                    ctx.submit_and_wait(enc).unwrap();
                    clock.ms() / calls as f64
                };
                run(1);
                (0..3).map(|_| run(30)).fold(f64::INFINITY, f64::min)
            };
            let (f, d) = (time(false), time(true));
            println!("| {n_head}/{n_kv}, {hd} | {kv} | {f:.2} | {d:.2} | {:.2}× |", f / d);
        }
    }
}

/// The real models' steps over a cache past the threshold: SmolLM2 (GQA 9/3) after 300 prompt
/// tokens and Gemma 3 (MQA at head 256, its own 512-key windows on five layers of six) after
/// 560: each step's logits and log-sum-exps equal the GPU's one pass over the whole text (its
/// flash kernel), to the bars `tests/reference_archs.rs` sets steps on the GPU.
#[test]
fn flash_decoding_steps_of_the_real_models_equal_their_one_pass() {
    let backend = GpuBackend::with_context(GpuContext::new_blocking().expect("GPU adapter"));
    let gemma_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH);
    let gemma = attnlab::Model::from_gguf_vec(std::fs::read(gemma_path).expect("make setup fetches Gemma 3")).unwrap();
    let text = "The quick brown fox jumps over the lazy dog while the cat watches from the warm window. ".repeat(60);
    for (m, prompt, steps) in [(common::real_model(), 300, 2), (gemma, 560, 1)] {
        let ids: Vec<u32> = m.tokenizer.encode(&text)[..prompt + steps].to_vec();
        // Logits of the stepped positions only (Gemma's 262 144-wide rows of every position
        // would not fit one binding).
        let whole_opts = ForwardOptions { logits_for: attnlab::backends::LogitsFor::Positions((prompt..ids.len()).collect()), ..Default::default() };
        let whole = backend.forward(&m, &ids, &whole_opts).unwrap();
        let trace = whole.trace.as_ref().unwrap();
        let (n_head, opts) = (m.config.n_head, ForwardOptions { logits_for: attnlab::backends::LogitsFor::Last, ..Default::default() });
        let mut cache = backend.new_cache(&m, ids.len());
        pollster::block_on(backend.step_async(&m, &ids[..prompt], &mut cache, &opts)).unwrap();
        for at in prompt..ids.len() {
            let step = pollster::block_on(backend.step_async(&m, &ids[at..at + 1], &mut cache, &opts)).unwrap();
            let e = max_diff(step.logits.row(0).as_slice().unwrap(), whole.logits.row(at - prompt).as_slice().unwrap());
            assert!(e <= 1e-2, "{} at {at}: logits differ by {e}", m.info.architecture);
            for (l, (_, lse)) in step.rows.iter().enumerate() {
                let e = max_diff(lse, &trace.layers[l].lse[at * n_head..(at + 1) * n_head]);
                assert!(e <= 1e-4, "{} layer {l} at {at}: lse differs by {e}", m.info.architecture);
            }
        }
    }
}
