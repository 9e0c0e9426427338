// Row norms, three ways. x, y, b: (n, d); w, bias: (d).
//   RMSNorm   (layer = 0): y = x / sqrt(mean(x²) + eps) * w (+ bias)
//   LayerNorm (layer = 1): y = (x − mean(x)) / sqrt(mean((x − mean)²) + eps) * w (+ bias)
// Entry points:
//   norm:          y = norm(x)           (b, unused, is a one-word dummy)
//   norm_in_place: x = norm(x)           (post-norms and per-head QK-norm)
//   add_norm:      x += b; y = norm(x)   (the residual add and the next norm in one pass)
// `bias` is read only when has_bias = 1 (else a one-word dummy).
// One workgroup per row; WG invocations reduce in workgroup memory, and every invocation
// reads and writes the same elements of x in all of its loops. LayerNorm takes the mean first
// and then the squares about it (two passes, as PyTorch: no cancellation on rows far from 0).
// Dispatch: (n, 1, 1).
struct Params {
    n: u32,
    d: u32,
    eps: f32,
    layer: u32,
    has_bias: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;

const WG: u32 = NORM_WG;
var<workgroup> partial: array<f32, NORM_WG>;

// The workgroup's sum of every invocation's `s` (called by every invocation: it holds barriers).
fn reduce(s: f32, li: u32) -> f32 {
    workgroupBarrier(); // an earlier reduction's result has been read
    partial[li] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}

// (mean, 1 / sqrt(mean of squares about it + eps)) of row `base`; the mean is 0 for RMSNorm.
fn stats(base: u32, li: u32) -> vec2<f32> {
    var mean = 0.0;
    if (p.layer == 1u) {
        var s = 0.0;
        for (var i = li; i < p.d; i += WG) {
            s += x[base + i];
        }
        mean = reduce(s, li) / f32(p.d);
    }
    var s2 = 0.0;
    for (var i = li; i < p.d; i += WG) {
        let v = x[base + i] - mean;
        s2 = fma(v, v, s2);
    }
    return vec2<f32>(mean, 1.0 / sqrt(reduce(s2, li) / f32(p.d) + p.eps));
}

fn normed(base: u32, i: u32, st: vec2<f32>) -> f32 {
    var v = (x[base + i] - st.x) * st.y * w[i];
    if (p.has_bias == 1u) {
        v += bias[i];
    }
    return v;
}

@compute @workgroup_size(NORM_WG, 1, 1)
fn norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.x * p.d;
    let st = stats(base, li);
    for (var i = li; i < p.d; i += WG) {
        y[base + i] = normed(base, i, st);
    }
}

@compute @workgroup_size(NORM_WG, 1, 1)
fn norm_in_place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.x * p.d;
    let st = stats(base, li);
    for (var i = li; i < p.d; i += WG) {
        x[base + i] = normed(base, i, st);
    }
}

@compute @workgroup_size(NORM_WG, 1, 1)
fn add_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.x * p.d;
    for (var i = li; i < p.d; i += WG) {
        x[base + i] = x[base + i] + b[base + i];
    }
    let st = stats(base, li);
    for (var i = li; i < p.d; i += WG) {
        y[base + i] = normed(base, i, st);
    }
}
