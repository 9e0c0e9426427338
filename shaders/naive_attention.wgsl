// Attention the textbook way, materialising S = QKᵀ·scale for a range of heads: the baseline
// the flash kernel is measured and tested against. Same tensors as flash_attention.wgsl, plus
//   s: (heads_in_pass, n, n) scores, then probabilities (causal entries j > i are 0).
// Three passes, for heads h0 .. h0 + heads_in_pass:
//   scores:  one invocation per (j, i, head);  dispatch (ceil(n/16), ceil(n/16), heads_in_pass)
//   softmax: one workgroup per (i, head);      dispatch (n, heads_in_pass, 1)
//   pv:      one invocation per (d, i, head);  dispatch (ceil(HEAD_DIM/16), ceil(n/16), heads_in_pass)
// The host prepends `const HEAD_DIM: u32 = …;`.
struct Params {
    n: u32,
    n_head: u32,
    n_kv: u32,
    group: u32,
    h0: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read_write> s: array<f32>;

const WG_SOFTMAX: u32 = 64u;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(MAP_TILE, MAP_TILE, 1)
fn scores(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let i = gid.y;
    let hl = gid.z;
    if (i >= p.n || j >= p.n) {
        return;
    }
    let h = p.h0 + hl;
    let g = h / p.group;
    var val = 0.0;
    if (j <= i) {
        var dot = 0.0;
        for (var d = 0u; d < HEAD_DIM; d++) {
            dot = fma(q[i * p.n_head * HEAD_DIM + h * HEAD_DIM + d], k[j * p.n_kv * HEAD_DIM + g * HEAD_DIM + d], dot);
        }
        val = dot * p.scale;
    }
    s[(hl * p.n + i) * p.n + j] = val;
}

@compute @workgroup_size(64, 1, 1)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = wg.x;
    let hl = wg.y;
    let base = (hl * p.n + i) * p.n;
    var mx = -3.0e38;
    for (var j = li; j <= i; j += WG_SOFTMAX) {
        mx = max(mx, s[base + j]);
    }
    red[li] = mx;
    workgroupBarrier();
    for (var st = WG_SOFTMAX / 2u; st > 0u; st /= 2u) {
        if (li < st) {
            red[li] = max(red[li], red[li + st]);
        }
        workgroupBarrier();
    }
    mx = red[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var j = li; j <= i; j += WG_SOFTMAX) {
        sum += exp(s[base + j] - mx);
    }
    red[li] = sum;
    workgroupBarrier();
    for (var st = WG_SOFTMAX / 2u; st > 0u; st /= 2u) {
        if (li < st) {
            red[li] += red[li + st];
        }
        workgroupBarrier();
    }
    sum = red[0];
    for (var j = li; j < p.n; j += WG_SOFTMAX) {
        var pj = 0.0;
        if (j <= i) {
            pj = exp(s[base + j] - mx) / sum;
        }
        s[base + j] = pj;
    }
    if (li == 0u) {
        lse[i * p.n_head + p.h0 + hl] = mx + log(sum);
    }
}

@compute @workgroup_size(MAP_TILE, MAP_TILE, 1)
fn pv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let i = gid.y;
    let hl = gid.z;
    if (d >= HEAD_DIM || i >= p.n) {
        return;
    }
    let h = p.h0 + hl;
    let g = h / p.group;
    var acc = 0.0;
    for (var j = 0u; j <= i; j++) {
        acc = fma(s[(hl * p.n + i) * p.n + j], v[j * p.n_kv * HEAD_DIM + g * HEAD_DIM + d], acc);
    }
    o[i * p.n_head * HEAD_DIM + h * HEAD_DIM + d] = acc;
}
