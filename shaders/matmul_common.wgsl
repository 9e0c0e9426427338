// Shared by both matmul kernels (matmul.wgsl, matmul_reg.wgsl; the host prepends it): the
// parameters, the output binding, and the end of a gemv — the lanes' partial sums added in
// workgroup memory.
//   y: (n, out_stride); a matrix part writes columns out_col0 .. out_col0 + rows
struct Params {
    n: u32,
    rows: u32,
    cols: u32,
    x_row0: u32,
    out_stride: u32,
    out_col0: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// gemv: GEMV_ROWS weight rows per 64-invocation workgroup, GEMV_LANES invocations per row.
const GEMV_LANES: u32 = 64u / GEMV_ROWS;
var<workgroup> partial: array<f32, 256>; // (GEMV_MAX_N, 64)

// Invocation `li` (lane `lane` of weight row `r`) hands in its partial sums for the n tokens;
// lane 0 of each row writes y. Call from uniform control flow (it holds a barrier).
fn gemv_finish(acc: array<f32, GEMV_MAX_N>, li: u32, lane: u32, r: u32) {
    for (var t = 0u; t < GEMV_MAX_N; t++) {
        partial[t * 64u + li] = acc[t];
    }
    workgroupBarrier();
    if (lane == 0u && r < p.rows) {
        for (var t = 0u; t < p.n; t++) {
            var sum = 0.0;
            for (var j = 0u; j < GEMV_LANES; j++) {
                sum += partial[t * 64u + li + j];
            }
            y[t * p.out_stride + p.out_col0 + r] = sum;
        }
    }
}
