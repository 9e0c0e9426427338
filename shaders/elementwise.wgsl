// Elementwise kernels over `len` values; dispatch (ceil(len / WG), 1, 1).
//   add:    a += b          (residual connection)
//   swiglu: a = silu(a) * b (a = gate, b = up)
//   geglu:  a = gelu_tanh(a) * b (Gemma)
struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;

const WG: u32 = ELEMENTWISE_WG;

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn add(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        a[gid.x] = a[gid.x] + b[gid.x];
    }
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn geglu(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        let g = a[gid.x];
        // tanh written with exp of a non-positive argument (no overflow for large |u|).
        let u = 0.7978846 * (g + 0.044715 * g * g * g);
        let e = exp(-2.0 * abs(u));
        let t = sign(u) * (1.0 - e) / (1.0 + e);
        a[gid.x] = 0.5 * g * (1.0 + t) * b[gid.x];
    }
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        let g = a[gid.x];
        a[gid.x] = g / (1.0 + exp(-g)) * b[gid.x];
    }
}
