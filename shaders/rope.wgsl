// Rotary embedding in place. Pairs of each head: (x[2i], x[2i+1]) when halves = 0 (ggml NORM,
// Llama as converted), (x[i], x[i + half_rope]) when halves = 1 (ggml NEOX, Gemma).
// x: (n, n_heads * head_dim); table: (n, rope_dim / 2, 2) = (cos, sin), computed on the host
// in f32 exactly as the CPU engine does (GPU sin/cos lose accuracy at large angles).
// One invocation per (token, head, pair); dispatch (ceil(n * n_heads * rope_dim/2 / WG), 1, 1).
struct Params {
    n: u32,
    n_heads: u32,
    head_dim: u32,
    half_rope: u32,
    halves: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

const WG: u32 = ELEMENTWISE_WG;

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
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
    let base = t * p.n_heads * p.head_dim + h * p.head_dim;
    var at = base + 2u * i;
    var bt = at + 1u;
    if (p.halves == 1u) {
        at = base + i;
        bt = base + i + p.half_rope;
    }
    let a = x[at];
    let b = x[bt];
    x[at] = a * cs - b * sn;
    x[bt] = a * sn + b * cs;
}
