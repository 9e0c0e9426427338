// RMSNorm per row: y = x / sqrt(mean(x²) + eps) * w.   x, y: (n, d); w: (d)
// One workgroup per row; WG invocations reduce the sum of squares in workgroup memory.
// Dispatch: (n, 1, 1).
struct Params {
    n: u32,
    d: u32,
    eps: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WG: u32 = ELEMENTWISE_WG;
var<workgroup> partial: array<f32, ELEMENTWISE_WG>;

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn rmsnorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wg.x;
    var s = 0.0;
    for (var i = li; i < p.d; i += WG) {
        let v = x[row * p.d + i];
        s = fma(v, v, s);
    }
    partial[li] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / sqrt(partial[0] / f32(p.d) + p.eps);
    for (var i = li; i < p.d; i += WG) {
        y[row * p.d + i] = x[row * p.d + i] * inv * w[i];
    }
}
