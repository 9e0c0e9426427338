// y = x · Wᵀ with W quantized, register-tiled: no workgroup memory, no barriers.
//   x: (n, cols) starting at row x_row0, read as vec4 (cols % 4 == 0)
//   W: (rows, cols) of this part of the matrix, repacked as in dequant.wgsl, read as vec4<u32>
//   y: (n, out_stride); this part writes columns out_col0 .. out_col0 + rows
// Each invocation owns REG_ROWS weight rows × REG_TOKENS tokens of y. For every 32-element
// block it loads each row's block once (one vec4<u32> of nibbles, or two of bytes, and its
// scale/min), then walks the block 4 columns at a time: one vec4 of x per token, the four
// weights of each row dequantized in registers and used for all REG_TOKENS tokens.
// Memory loads per block: REG_ROWS · (1–2 + 1–2) + REG_TOKENS · 8, for 32 · REG_ROWS · REG_TOKENS
// multiply-adds — the ratio that matters where every load is costly (a CPU running the shader,
// as lavapipe does) and a good one on GPUs.
// Dispatch: (ceil(rows / (8 · REG_ROWS)), ceil(n / (8 · REG_TOKENS)), 1).
// Params `p`, the output `y` and `gemv_finish`: matmul_common.wgsl.
@group(0) @binding(1) var<storage, read> quants: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> mins: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<vec4<f32>>;

// One row's 32-element block, as loaded: nibbles (Q4) in `a`, bytes (Q8) in `a` then `b`.
struct Block {
    a: vec4<u32>,
    b: vec4<u32>,
    s0: f32, // scale of elements 0..16 (all 32 but for FORMAT_Q8S16)
    s1: f32, // scale of elements 16..32
    m: f32,  // min (Q4)
}

fn load_block(row: u32, blk: u32) -> Block {
    var o: Block;
    let nb = p.cols / 32u;
    let b = row * nb + blk;
    if (FORMAT == FORMAT_Q4) {
        o.a = quants[b];
        o.s0 = scales[b];
        o.m = mins[b];
    } else if (FORMAT == FORMAT_Q8 || FORMAT == FORMAT_Q8S16) {
        o.a = quants[b * 2u];
        o.b = quants[b * 2u + 1u];
        if (FORMAT == FORMAT_Q8S16) {
            o.s0 = scales[b * 2u];
            o.s1 = scales[b * 2u + 1u];
        } else {
            o.s0 = scales[b];
        }
    }
    return o;
}

fn signed_bytes(w: u32) -> vec4<f32> {
    let v = vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w)) >> vec4<u32>(24u);
    return vec4<f32>(v);
}

// Columns blk·32 + 4c .. + 4 of the row whose block is `o` (F32 reads storage directly).
fn weights4(o: Block, row: u32, blk: u32, c: u32) -> vec4<f32> {
    if (FORMAT == FORMAT_F32) {
        return bitcast<vec4<f32>>(quants[(row * p.cols + blk * 32u) / 4u + c]);
    }
    if (FORMAT == FORMAT_Q4) {
        // Byte j of the block holds element j (low nibble) and j + 16 (high nibble).
        let w = o.a[c % 4u] >> ((c / 4u) * 4u);
        let q = vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(15u);
        return fma(vec4<f32>(q), vec4<f32>(o.s0), vec4<f32>(o.m));
    }
    var w: u32;
    if (c < 4u) { w = o.a[c]; } else { w = o.b[c - 4u]; }
    var s = o.s0;
    if (FORMAT == FORMAT_Q8S16 && c >= 4u) { s = o.s1; }
    return signed_bytes(w) * s;
}

// The tile's loads, accumulators and stores are written out straight (the host expands the
// UNROLLED_* markers for REG_ROWS × REG_TOKENS, see `sources::with_register_tile`): arrays
// indexed in loops can end up in memory, and every value here must stay in a register.
@compute @workgroup_size(8, 8, 1)
fn matmul_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r0 = gid.x * REG_ROWS;
    let t0 = gid.y * REG_TOKENS;
    let cols4 = p.cols / 4u;
    // Rows and tokens past the end read the last one (no branches in the loop) and write nothing.
    UNROLLED_SETUP
    for (var blk = 0u; blk < p.cols / 32u; blk++) {
        UNROLLED_LOAD_BLOCKS
        for (var c = 0u; c < 8u; c++) {
            let xc = blk * 8u + c;
            UNROLLED_CHUNK
        }
    }
    UNROLLED_STORE
}

// Few tokens (n ≤ GEMV_MAX_N; the last position's output projection): a workgroup owns
// GEMV_ROWS weight rows and GEMV_LANES invocations per row; each invocation takes every
// GEMV_LANES-th block of its row, loads it once and multiplies it with the n tokens' x, and the
// lanes' partial sums are added in workgroup memory. Dispatch: (ceil(rows / GEMV_ROWS), 1, 1).

@compute @workgroup_size(64, 1, 1)
fn gemv_reg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = wg.x * GEMV_ROWS + li / GEMV_LANES;
    let row = min(r, p.rows - 1u);
    let lane = li % GEMV_LANES;
    let cols4 = p.cols / 4u;
    var acc = array<f32, GEMV_MAX_N>();
    for (var blk = lane; blk < p.cols / 32u; blk += GEMV_LANES) {
        let wb = load_block(row, blk);
        for (var c = 0u; c < 8u; c++) {
            let w = weights4(wb, row, blk, c);
            for (var t = 0u; t < p.n; t++) {
                acc[t] += dot(x[(p.x_row0 + t) * cols4 + blk * 8u + c], w);
            }
        }
    }
    gemv_finish(acc, li, lane, r);
}
