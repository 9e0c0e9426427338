// Rotary embedding in place, llama.cpp NORM pairing: pairs (x[2i], x[2i+1]) of each head.
// x: (n, n_heads * head_dim); table: (n, rope_dim / 2, 2) = (cos, sin), computed on the host
// in f32 exactly as the CPU engine does (GPU sin/cos lose accuracy at large angles).
// One invocation per (token, head, pair); dispatch (ceil(n * n_heads * rope_dim/2 / WG), 1, 1).
struct Params {
    n: u32,
    n_heads: u32,
    head_dim: u32,
    half_rope: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256, 1, 1)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    if (e >= p.n * p.n_heads * p.half_rope) {
        return;
    }
    let i = e % p.half_rope;
    let h = (e / p.half_rope) % p.n_heads;
    let t = e / (p.half_rope * p.n_heads);
    let cs = table[(t * p.half_rope + i) * 2u];
    let sn = table[(t * p.half_rope + i) * 2u + 1u];
    let at = t * p.n_heads * p.head_dim + h * p.head_dim + 2u * i;
    let a = x[at];
    let b = x[at + 1u];
    x[at] = a * cs - b * sn;
    x[at + 1u] = a * sn + b * cs;
}
