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
// Key rules (cache policies, what-ifs; all 0 by default): `sinks` keys 0 .. sinks stay visible
// whatever the window; `hide_first` hides key 0 from every position after the first;
// `unmasked` drops the causal mask and the window (every key 0 .. past + n). `scale` is the
// what-if's when it changes it. Which key a position sees is [`sees`], for both kernels.
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
    sinks: u32,
    hide_first: u32,
    unmasked: u32,
    _pad: u32,
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

// Whether the query at position t sees key `key` (p.past + p.n keys in the cache).
fn sees(t: u32, key: u32) -> bool {
    if (p.unmasked != 0u) {
        return key < p.past + p.n;
    }
    let in_window = p.window == 0u || t - key < p.window || key < p.sinks;
    return key <= t && in_window && !(p.hide_first != 0u && key == 0u && t > 0u);
}

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
    // The newest key any row here sees (uniform across the workgroup), and this row's.
    var last_t = p.past + min(q0 + p.q_tile, p.n) - 1u;
    var last = t;
    if (p.unmasked != 0u) {
        last_t = p.past + p.n - 1u;
        last = last_t;
    }
    let t0 = p.past + q0;
    let banded = p.window > 0u && p.sinks == 0u && p.unmasked == 0u;
    var k_start = 0u;
    if (banded && t0 + 1u > p.window) {
        k_start = ((t0 + 1u - p.window) / BC) * BC; // uniform: the oldest key any row here sees
    }
    var first = 0u; // this row's oldest visible key
    if (banded && t + 1u > p.window) {
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
        if (in_range && k0 <= last && k0 + BC > first) {
            var scores: array<f32, BC>;
            var tile_max = NEG_BIG;
            for (var j = 0u; j < BC; j++) {
                var s = NEG_BIG;
                if (sees(t, k0 + j)) {
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
                if (sees(t, k0 + j)) {
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

// ---------------------------------------------------------------------------------------------
// Flash-decoding: a step of few new queries (n ≤ DECODE_MAX_N) over a long cache. The flash
// kernel above has one workgroup per KV head there, and each invocation walks every key; here
// the keys are split into chunks of DECODE_CHUNK, one workgroup each, and a second pass merges
// the chunks with the log-sum-exp rule. Same params (q_tile holds the first chunk instead: the
// oldest chunk any query's window reaches), same q, k, v, o, lse; two more bindings:
//
//   part_o:  (chunks, n, n_head, HEAD_DIM)   Σ_j exp(s_j − m) · v_j over the chunk's visible keys
//   part_ml: (chunks, n, n_head, 2)          (m, l): the chunk's score max and Σ_j exp(s_j − m)
//                                            (NEG_BIG, 0 where the query sees none of its keys)
//
// decode_chunks — workgroup (x, c): DECODE_HEADS query heads x · DECODE_HEADS .. (all of one KV
// head's group, which read each key and value once for all of them) and chunk first + c; WG
// invocations; its rows are (query, head) pairs r = qi · DECODE_HEADS + hh, DECODE_ROWS of them.
// (1) the rows' queries into workgroup memory; (2) scores: invocation li takes keys li,
// li + WG, … (DECODE_CHUNK / WG of them), one load of each key for every row, straight-line
// dot products over the head dimension; (3) per row the chunk's max, then exp(s − m) and their
// sum, by tree reductions over the WG invocations; (4) p·v: invocation li = (strand, d4) sums
// every KSPLIT-th key for 4 dimensions (HD4 · KSPLIT ≤ WG invocations busy), the KSPLIT strands
// summed in workgroup memory. Workgroup memory ≤ 13 KiB (4 rows at HEAD_DIM 256). Dispatch:
// (n_head / DECODE_HEADS, chunks, 1).
//
// decode_merge — workgroup qi · n_head + h, HD4 invocations (one per 4 dimensions): M = max m_c,
// L = Σ l_c exp(m_c − M), o = Σ part_o_c exp(m_c − M) / L, lse = M + log L. Dispatch:
// (n · n_head, 1, 1).
//
// Every invocation's loops are bounded by the chunk (≤ DECODE_CHUNK iterations) and the merge's
// walk the chunks twice: llvmpipe's 65535 iterations per invocation would take 8 M keys.
@group(0) @binding(6) var<storage, read_write> part_o: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> part_ml: array<f32>;

// Each pipeline is built for one step's n and heads per workgroup
// (`sources::with_decode_rows`), so the loops over rows below unroll without masked-off work.
const DECODE_N: u32 = DECODE_MAX_N;
const DECODE_HEADS: u32 = 1u;
const DECODE_ROWS: u32 = DECODE_N * DECODE_HEADS;
const KPI: u32 = DECODE_CHUNK / WG; // keys per invocation in the score phase
const KSPLIT: u32 = WG / HD4; // key strands in the p·v phase

var<workgroup> dq: array<vec4<f32>, DECODE_ROWS * HD4>; // (rows, HEAD_DIM): the queries
var<workgroup> dp: array<f32, DECODE_ROWS * DECODE_CHUNK>; // (rows, chunk): scores, then exp(s − m)
var<workgroup> dred: array<f32, DECODE_ROWS * WG>; // (rows, WG): reductions
var<workgroup> dacc: array<vec4<f32>, DECODE_ROWS * WG>; // (KSPLIT, rows, HEAD_DIM): strand sums

@compute @workgroup_size(FLASH_WG, 1, 1)
fn decode_chunks(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h0 = wg.x * DECODE_HEADS;
    let g = h0 / p.group;
    let c = wg.y;
    let k0 = (p.q_tile + c) * DECODE_CHUNK;
    let kv_len = p.past + p.n;
    let q_row4 = p.n_head * HD4;
    let kv_row4 = p.n_kv * HD4;

    for (var s = li; s < DECODE_ROWS * HD4; s += WG) {
        let r = s / HD4;
        dq[s] = q[(r / DECODE_HEADS) * q_row4 + (h0 + r % DECODE_HEADS) * HD4 + s % HD4];
    }
    workgroupBarrier();

    var mx: array<f32, DECODE_ROWS>;
    for (var r = 0u; r < DECODE_ROWS; r++) {
        mx[r] = NEG_BIG;
    }
    for (var t = 0u; t < KPI; t++) {
        let j = t * WG + li;
        let key = k0 + j;
        var sc: array<f32, DECODE_ROWS>;
        // Keys some query sees: the window of the first (and the sinks), up to the last.
        if (key < kv_len && (p.window == 0u || key + p.window > p.past || key < p.sinks || p.unmasked != 0u)) {
            let kb = key * kv_row4 + g * HD4;
            UNROLLED_DECODE_DOTS
        }
        for (var r = 0u; r < DECODE_ROWS; r++) {
            var s = NEG_BIG;
            if (sees(p.past + r / DECODE_HEADS, key)) {
                s = sc[r] * p.scale;
            }
            dp[r * DECODE_CHUNK + j] = s;
            mx[r] = max(mx[r], s);
        }
    }
    for (var r = 0u; r < DECODE_ROWS; r++) {
        dred[r * WG + li] = mx[r];
    }
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st = st / 2u) {
        if (li < st) {
            for (var r = 0u; r < DECODE_ROWS; r++) {
                dred[r * WG + li] = max(dred[r * WG + li], dred[r * WG + li + st]);
            }
        }
        workgroupBarrier();
    }
    var m: array<f32, DECODE_ROWS>;
    var sum: array<f32, DECODE_ROWS>;
    for (var r = 0u; r < DECODE_ROWS; r++) {
        m[r] = dred[r * WG];
    }
    workgroupBarrier();
    for (var t = 0u; t < KPI; t++) {
        let j = t * WG + li;
        for (var r = 0u; r < DECODE_ROWS; r++) {
            let s = dp[r * DECODE_CHUNK + j];
            var e = 0.0;
            if (s > NEG_BIG) {
                e = exp(s - m[r]);
            }
            dp[r * DECODE_CHUNK + j] = e;
            sum[r] += e;
        }
    }
    for (var r = 0u; r < DECODE_ROWS; r++) {
        dred[r * WG + li] = sum[r];
    }
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st = st / 2u) {
        if (li < st) {
            for (var r = 0u; r < DECODE_ROWS; r++) {
                dred[r * WG + li] += dred[r * WG + li + st];
            }
        }
        workgroupBarrier();
    }

    // p·v: strand ks takes keys ks, ks + KSPLIT, … of the chunk (those in the cache), each
    // value loaded once for every row.
    let ks = li / HD4;
    let d4 = li % HD4;
    if (ks < KSPLIT) {
        var acc: array<vec4<f32>, DECODE_ROWS>;
        let j_end = min(DECODE_CHUNK, kv_len - k0);
        for (var j = ks; j < j_end; j += KSPLIT) {
            let vv = v[(k0 + j) * kv_row4 + g * HD4 + d4];
            for (var r = 0u; r < DECODE_ROWS; r++) {
                acc[r] = fma(vec4<f32>(dp[r * DECODE_CHUNK + j]), vv, acc[r]);
            }
        }
        for (var r = 0u; r < DECODE_ROWS; r++) {
            dacc[(ks * DECODE_ROWS + r) * HD4 + d4] = acc[r];
        }
    }
    workgroupBarrier();
    if (li < HD4) {
        for (var r = 0u; r < DECODE_ROWS; r++) {
            var a = vec4<f32>(0.0);
            for (var t = 0u; t < KSPLIT; t++) {
                a += dacc[(t * DECODE_ROWS + r) * HD4 + li];
            }
            let at = (c * DECODE_N + r / DECODE_HEADS) * p.n_head + h0 + r % DECODE_HEADS;
            part_o[at * HD4 + li] = a;
            if (li == 0u) {
                part_ml[2u * at] = m[r];
                part_ml[2u * at + 1u] = dred[r * WG];
            }
        }
    }
}

@compute @workgroup_size(HD4, 1, 1)
fn decode_merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let qi = wg.x / p.n_head;
    let h = wg.x % p.n_head;
    let chunks = (p.past + p.n + DECODE_CHUNK - 1u) / DECODE_CHUNK - p.q_tile;
    let stride = p.n * p.n_head; // between one chunk's (query, head) entries and the next's
    let at0 = qi * p.n_head + h;
    var big = NEG_BIG;
    for (var c = 0u; c < chunks; c++) {
        big = max(big, part_ml[2u * (c * stride + at0)]);
    }
    var l = 0.0;
    var a = vec4<f32>(0.0);
    for (var c = 0u; c < chunks; c++) {
        let at = c * stride + at0;
        let w = exp(part_ml[2u * at] - big);
        l += part_ml[2u * at + 1u] * w;
        a = fma(vec4<f32>(w), part_o[at * HD4 + li], a);
    }
    o[qi * p.n_head * HD4 + h * HD4 + li] = a / l;
    if (li == 0u) {
        lse[qi * p.n_head + h] = big + log(l);
    }
}
