// Elementwise kernels over `len` values; dispatch (ceil(len / WG), 1, 1).
//   swiglu: a = silu(a) * b (a = gate, b = up)
//   geglu:  a = gelu_tanh(a) * b (Gemma)
//   add:    a = a + b
//   add_bias: a[e] = a[e] + b[e % row] (a bias of `row` values on every row)
//   gelu:   a = gelu_tanh(a) (b unused)
//   silu_only: a = silu(a) (b unused)
//   zero_heads: a[e] = 0 where e's head (e % row / head_dim) is set in `mask` (head knock-out;
//               row = n_head · head_dim; b unused)
struct Params {
    len: u32,
    row: u32,
    head_dim: u32,
    mask: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;

const WG: u32 = ELEMENTWISE_WG;

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn zero_heads(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        let h = (gid.x % p.row) / p.head_dim;
        if (((p.mask >> h) & 1u) == 1u) {
            a[gid.x] = 0.0;
        }
    }
}

fn gelu_tanh(g: f32) -> f32 {
    // tanh written with exp of a non-positive argument (no overflow for large |u|).
    let u = 0.7978846 * (g + 0.044715 * g * g * g);
    let e = exp(-2.0 * abs(u));
    let t = sign(u) * (1.0 - e) / (1.0 + e);
    return 0.5 * g * (1.0 + t);
}

fn silu(g: f32) -> f32 {
    return g / (1.0 + exp(-g));
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn add(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        a[gid.x] = a[gid.x] + b[gid.x];
    }
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        a[gid.x] = a[gid.x] + b[gid.x % p.row];
    }
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn gelu(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        a[gid.x] = gelu_tanh(a[gid.x]);
    }
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn silu_only(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        a[gid.x] = silu(a[gid.x]);
    }
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn geglu(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        a[gid.x] = gelu_tanh(a[gid.x]) * b[gid.x];
    }
}

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < p.len) {
        a[gid.x] = silu(a[gid.x]) * b[gid.x];
    }
}
