// Causal multi-head attention, FlashAttention-2 style: online softmax over K/V tiles staged in
// workgroup memory; no n × n matrix exists anywhere. Writes O and each row's log-sum-exp.
//
//   q:   (n, n_head * HEAD_DIM)         after RoPE: the n new queries, positions past .. past + n
//   k,v: (past + n, n_kv * HEAD_DIM)   after RoPE (k): a KV cache, the new tokens' rows last
//   o:   (n, n_head * HEAD_DIM)
//   lse: (n, n_head)                    log Σ_j exp(q·k_j · scale)
//
// A workgroup owns one KV head g and a tile of q_tile query positions; its WG invocations are
// (query, head-in-group) pairs, so the `group` query heads that share KV head g (GQA) all
// use each staged K/V tile. Keys past the tile's last query are never loaded (causal skip).
// Per K/V tile: scores for BC keys, tile max, one rescale of the running sum and accumulator.
// Workgroup memory: 2 · BC · HEAD_DIM · 4 bytes = 8 KiB (BC = 1024 / HEAD_DIM keys per tile,
// prepended by the host with HEAD_DIM: 16 at 64, 4 at 256; the limit is 16 KiB).
// Query row qi is position t = past + qi and sees keys ..= t.
// Sliding window (window > 0): position t sees keys t + 1 − window ..= t; tiles wholly older
// than the workgroup's first query's window are never loaded, so a windowed layer costs O(n·w).
// Dispatch: (ceil(n / q_tile), n_kv, 1) with q_tile = WG / group.
//
// The host prepends `const HEAD_DIM: u32 = …;` and expands the `UNROLLED_*` markers into
// straight-line vec4 code over the head dimension (HD4 = HEAD_DIM / 4 terms): per key, the
// inner work then has no loop, which is faster on GPUs and keeps each invocation far below
// llvmpipe's per-invocation loop-iteration limit (65535), where long inputs otherwise stop.
struct Params {
    n: u32,
    n_head: u32,
    n_kv: u32,
    group: u32,
    q_tile: u32,
    scale: f32,
    window: u32,
    past: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

const WG: u32 = FLASH_WG; // invocations: (query, head-in-group) pairs
const HD4: u32 = HEAD_DIM / 4u;
const NEG_BIG: f32 = -3.0e38;

var<workgroup> k_tile: array<vec4<f32>, BC * HD4>; // (BC, HEAD_DIM)
var<workgroup> v_tile: array<vec4<f32>, BC * HD4>; // (BC, HEAD_DIM)

@compute @workgroup_size(FLASH_WG, 1, 1)
fn flash_attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wg.y;
    let q0 = wg.x * p.q_tile;
    let qi = q0 + li / p.group;
    let h = g * p.group + li % p.group;
    let in_range = li < p.q_tile * p.group && qi < p.n;
    let q_row4 = p.n_head * HD4;
    let kv_row4 = p.n_kv * HD4;

    var qv: array<vec4<f32>, HD4>;
    var acc: array<vec4<f32>, HD4>;
    if (in_range) {
        for (var d = 0u; d < HD4; d++) {
            qv[d] = q[qi * q_row4 + h * HD4 + d];
        }
    }
    var m = NEG_BIG;
    var l = 0.0;
    let t = p.past + qi; // this row's position
    let last_t = p.past + min(q0 + p.q_tile, p.n) - 1u; // uniform across the workgroup
    let t0 = p.past + q0;
    var k_start = 0u;
    if (p.window > 0u && t0 + 1u > p.window) {
        k_start = ((t0 + 1u - p.window) / BC) * BC; // uniform: the oldest key any row here sees
    }
    var first = 0u; // this row's oldest visible key
    if (p.window > 0u && t + 1u > p.window) {
        first = t + 1u - p.window;
    }
    for (var k0 = k_start; k0 <= last_t; k0 += BC) {
        for (var s = li; s < BC * HD4; s += WG) {
            let key = k0 + s / HD4;
            let d = s % HD4;
            var kk = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if (key < p.past + p.n) {
                kk = k[key * kv_row4 + g * HD4 + d];
                vv = v[key * kv_row4 + g * HD4 + d];
            }
            k_tile[s] = kk;
            v_tile[s] = vv;
        }
        workgroupBarrier();
        if (in_range && k0 <= t && k0 + BC > first) {
            var scores: array<f32, BC>;
            var tile_max = NEG_BIG;
            for (var j = 0u; j < BC; j++) {
                var s = NEG_BIG;
                if (k0 + j <= t && k0 + j >= first) {
                    let kb = j * HD4;
                    s = (UNROLLED_DOT) * p.scale;
                }
                scores[j] = s;
                tile_max = max(tile_max, s);
            }
            let m_new = max(m, tile_max);
            let corr = exp(m - m_new);
            l = l * corr;
            UNROLLED_RESCALE
            for (var j = 0u; j < BC; j++) {
                if (k0 + j <= t && k0 + j >= first) {
                    let pj = exp(scores[j] - m_new);
                    l += pj;
                    let kb = j * HD4;
                    UNROLLED_ACCUMULATE
                }
            }
            m = m_new;
        }
        workgroupBarrier();
    }
    if (in_range) {
        let inv = 1.0 / l;
        for (var d = 0u; d < HD4; d++) {
            o[qi * q_row4 + h * HD4 + d] = acc[d] * inv;
        }
        lse[qi * p.n_head + h] = m + log(l);
    }
}
