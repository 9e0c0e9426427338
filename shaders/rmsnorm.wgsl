// RMSNorm per row: y = x / sqrt(mean(x²) + eps) * w, three ways. x, y, b: (n, d); w: (d).
//   rmsnorm:          y = norm(x)           (b, unused, is a one-word dummy)
//   rmsnorm_in_place: x = norm(x)           (Gemma's post-norms and per-head QK-norm)
//   add_rmsnorm:      x += b; y = norm(x)   (the residual add and the next norm in one pass)
// One workgroup per row; WG invocations reduce the sum of squares in workgroup memory, and
// every invocation reads and writes the same elements of x in both of its loops.
// Dispatch: (n, 1, 1).
struct Params {
    n: u32,
    d: u32,
    eps: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = NORM_WG;
var<workgroup> partial: array<f32, NORM_WG>;

// 1 / sqrt(mean of squares + eps) of the row whose sum of squares is spread over the
// workgroup's `s` values (called by every invocation: it holds barriers).
fn inv_rms(s: f32, li: u32) -> f32 {
    partial[li] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    return 1.0 / sqrt(partial[0] / f32(p.d) + p.eps);
}

// Sum of this invocation's squares of row `base`'s x.
fn sum_sq(base: u32, li: u32) -> f32 {
    var s = 0.0;
    for (var i = li; i < p.d; i += WG) {
        let v = x[base + i];
        s = fma(v, v, s);
    }
    return s;
}

@compute @workgroup_size(NORM_WG, 1, 1)
fn rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.x * p.d;
    let inv = inv_rms(sum_sq(base, li), li);
    for (var i = li; i < p.d; i += WG) {
        y[base + i] = x[base + i] * inv * w[i];
    }
}

@compute @workgroup_size(NORM_WG, 1, 1)
fn rmsnorm_in_place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.x * p.d;
    let inv = inv_rms(sum_sq(base, li), li);
    for (var i = li; i < p.d; i += WG) {
        x[base + i] = x[base + i] * inv * w[i];
    }
}

@compute @workgroup_size(NORM_WG, 1, 1)
fn add_rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let base = wg.x * p.d;
    var s = 0.0;
    for (var i = li; i < p.d; i += WG) {
        let v = x[base + i] + b[base + i];
        x[base + i] = v;
        s = fma(v, v, s);
    }
    let inv = inv_rms(s, li);
    for (var i = li; i < p.d; i += WG) {
        y[base + i] = x[base + i] * inv * w[i];
    }
}
