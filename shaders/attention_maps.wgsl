// Exact attention quantities recomputed from a forward pass's capture (post-RoPE Q and K and
// each row's log-sum-exp), never from a stored n × n map:
//   p[h, i, j] = exp(q[i, h] · k[j, h / group] · scale − lse[h, i])   for j ≤ i, else 0.
//
//   q:   (n, n_head * HEAD_DIM)    k: (n, n_kv * HEAD_DIM)    lse: (n, n_head)
// Entry points:
//   probs:    out (n, n), one head's full map.        One invocation per (j, i); dispatch (ceil(n/16), ceil(n/16), 1)
//   pooled:   out (2, side, side): max then causal mean over block × block tiles of one head
//             (mean is NaN-free: tiles above the diagonal get -1).  One invocation per tile;
//             dispatch (ceil(side/16), ceil(side/16), 1)
//   row_mass: out (n_head, n): mass of row i on keys [k_lo, min(k_hi, i + 1)), every head.
//             Sink mass is its mean over rows 1..n−1 with [0, 1); span mass over chosen rows.
//             One invocation per (i, h); dispatch (ceil(n/16), ceil(n_head/16), 1)
// The host prepends `const HEAD_DIM: u32 = …;` and expands UNROLLED_DOT (see flash_attention.wgsl).
struct Params {
    n: u32,
    n_head: u32,
    n_kv: u32,
    group: u32,
    head: u32,
    block: u32,
    side: u32,
    k_lo: u32,
    k_hi: u32,
    scale: f32,
    window: u32, // sliding window (0: none): keys older than i + 1 − window get 0
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const HD4: u32 = HEAD_DIM / 4u;

fn prob(h: u32, i: u32, j: u32) -> f32 {
    if (j > i || (p.window > 0u && j + p.window <= i)) {
        return 0.0;
    }
    let qb = i * p.n_head * HD4 + h * HD4;
    let kb = j * p.n_kv * HD4 + (h / p.group) * HD4;
    let s = UNROLLED_DOT;
    return exp(s * p.scale - lse[i * p.n_head + h]);
}

@compute @workgroup_size(MAP_TILE, MAP_TILE, 1)
fn probs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let i = gid.y;
    if (i < p.n && j < p.n) {
        out[i * p.n + j] = prob(p.head, i, j);
    }
}

@compute @workgroup_size(MAP_TILE, MAP_TILE, 1)
fn pooled(@builtin(global_invocation_id) gid: vec3<u32>) {
    let tj = gid.x;
    let ti = gid.y;
    if (ti >= p.side || tj >= p.side) {
        return;
    }
    var mx = 0.0;
    var sum = 0.0;
    var count = 0u;
    let i_end = min((ti + 1u) * p.block, p.n);
    for (var i = ti * p.block; i < i_end; i++) {
        let j_end = min(min((tj + 1u) * p.block, p.n), i + 1u);
        for (var j = tj * p.block; j < j_end; j++) {
            let v = prob(p.head, i, j);
            mx = max(mx, v);
            sum += v;
            count += 1u;
        }
    }
    out[ti * p.side + tj] = mx;
    out[p.side * p.side + ti * p.side + tj] = select(-1.0, sum / f32(max(count, 1u)), count > 0u);
}

@compute @workgroup_size(MAP_TILE, MAP_TILE, 1)
fn row_mass(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let h = gid.y;
    if (i >= p.n || h >= p.n_head) {
        return;
    }
    var mass = 0.0;
    let end = min(p.k_hi, i + 1u);
    for (var j = p.k_lo; j < end; j++) {
        mass += prob(h, i, j);
    }
    out[h * p.n + i] = mass;
}
