// Row-wise argmax: out[out_at + r] = the index of the largest value of row r of x (rows, width),
// the lowest index on ties, written as f32 (exact for indices below 2^24).
// One workgroup per row; each invocation scans a strided slice, then a tree reduction in
// workgroup memory. Dispatch: (rows, 1, 1).
struct Params {
    rows: u32,
    width: u32,
    out_at: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = ELEMENTWISE_WG;
var<workgroup> best_v: array<f32, ELEMENTWISE_WG>;
var<workgroup> best_i: array<u32, ELEMENTWISE_WG>;

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wg.x;
    var v = -3.0e38;
    var at = 0xffffffffu;
    for (var i = li; i < p.width; i += WG) {
        let x_i = x[row * p.width + i];
        if (x_i > v) {
            v = x_i;
            at = i;
        }
    }
    best_v[li] = v;
    best_i[li] = at;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (li < stride) {
            let ov = best_v[li + stride];
            let oi = best_i[li + stride];
            if (ov > best_v[li] || (ov == best_v[li] && oi < best_i[li])) {
                best_v[li] = ov;
                best_i[li] = oi;
            }
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        out[p.out_at + row] = f32(best_i[0]);
    }
}
