// y = x · Wᵀ with W quantized (dequantized on the fly, see dequant.wgsl).
//   x: (n, cols) starting at row x_row0, row stride cols
//   W: (rows, cols) of this part of the matrix
//   y: (n, out_stride); this part writes columns out_col0 .. out_col0 + rows
// A workgroup computes a TILE_N × TILE_R block of y, staging a TILE_N × TILE_K slice of x and a
// TILE_R × TILE_K slice of W (dequantized) in workgroup memory (12 KiB); each invocation owns
// ROWS_PER_INV × TOKENS_PER_INV outputs. Dispatch: (ceil(rows / TILE_R), ceil(n / TILE_N), 1).
// `gemv` (below) serves n ≤ GEMV_MAX_N tokens (the last position's output projection), where a
// 32-token tile would compute 31 rows for nothing.
// Params `p`, the output `y` and `gemv_finish`: matmul_common.wgsl.
@group(0) @binding(1) var<storage, read> quants: array<u32>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> mins: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;

const WG_X: u32 = 16u;            // invocations along weight rows
const WG_Y: u32 = 16u;            // invocations along tokens
const TILE_R: u32 = MATMUL_TILE_R; // weight rows per workgroup (= WG_X · ROWS_PER_INV)
const TILE_N: u32 = MATMUL_TILE_N; // tokens per workgroup (= WG_Y · TOKENS_PER_INV)
const TILE_K: u32 = 32u;          // reduction slice (one quant block)
const ROWS_PER_INV: u32 = 4u;     // TILE_R / WG_X
const TOKENS_PER_INV: u32 = 2u;   // TILE_N / WG_Y

var<workgroup> xs: array<f32, 1024>; // (TILE_N, TILE_K)
var<workgroup> ws: array<f32, 2048>; // (TILE_R, TILE_K)

@compute @workgroup_size(16, 16, 1)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r_base = wg.x * TILE_R;
    let t_base = wg.y * TILE_N;
    var acc: array<f32, 8>; // (TOKENS_PER_INV, ROWS_PER_INV)
    for (var k0 = 0u; k0 < p.cols; k0 += TILE_K) {
        for (var s = 0u; s < (TILE_N * TILE_K) / (WG_X * WG_Y); s++) {
            let idx = li + s * WG_X * WG_Y;
            let t = t_base + idx / TILE_K;
            let k = k0 + idx % TILE_K;
            var v = 0.0;
            if (t < p.n && k < p.cols) {
                v = x[(p.x_row0 + t) * p.cols + k];
            }
            xs[idx] = v;
        }
        for (var s = 0u; s < (TILE_R * TILE_K) / (WG_X * WG_Y); s++) {
            let idx = li + s * WG_X * WG_Y;
            let r = r_base + idx / TILE_K;
            let k = k0 + idx % TILE_K;
            var v = 0.0;
            if (r < p.rows && k < p.cols) {
                v = dequant(r * p.cols + k);
            }
            ws[idx] = v;
        }
        workgroupBarrier();
        for (var k = 0u; k < TILE_K; k++) {
            let x0 = xs[lid.y * TILE_K + k];
            let x1 = xs[(lid.y + WG_Y) * TILE_K + k];
            for (var j = 0u; j < ROWS_PER_INV; j++) {
                let w = ws[(lid.x + j * WG_X) * TILE_K + k];
                acc[j] = fma(x0, w, acc[j]);
                acc[ROWS_PER_INV + j] = fma(x1, w, acc[ROWS_PER_INV + j]);
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TOKENS_PER_INV; i++) {
        let t = t_base + lid.y + i * WG_Y;
        for (var j = 0u; j < ROWS_PER_INV; j++) {
            let r = r_base + lid.x + j * WG_X;
            if (t < p.n && r < p.rows) {
                y[t * p.out_stride + p.out_col0 + r] = acc[i * ROWS_PER_INV + j];
            }
        }
    }
}

// Few tokens: a workgroup owns GEMV_ROWS weight rows, GEMV_LANES invocations per row stride
// the reduction (adjacent invocations read adjacent weights), each weight is dequantized once,
// and the lanes' partial sums are added in workgroup memory. Dispatch: (ceil(rows / GEMV_ROWS), 1, 1).

@compute @workgroup_size(64, 1, 1)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = wg.x * GEMV_ROWS + li / GEMV_LANES;
    let lane = li % GEMV_LANES;
    var acc = array<f32, GEMV_MAX_N>();
    if (r < p.rows) {
        for (var k = lane; k < p.cols; k += GEMV_LANES) {
            let w = dequant(r * p.cols + k);
            for (var t = 0u; t < p.n; t++) {
                acc[t] = fma(x[(p.x_row0 + t) * p.cols + k], w, acc[t]);
            }
        }
    }
    gemv_finish(acc, li, lane, r);
}
