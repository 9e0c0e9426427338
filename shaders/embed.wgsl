// Embedding gather: out (n, d) = scale · rows ids[t] of the token embedding matrix (vocab, d)
// (scale: 1 for Llama, √d for Gemma).
// The matrix may be split into row parts (see weights.rs); this dispatch holds rows
// row0 .. row0 + rows and writes only the tokens whose id falls there.
// One invocation per output element; dispatch (ceil(n * d / WG), 1, 1) per part.
struct Params {
    n: u32,
    d: u32,
    row0: u32,
    rows: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> quants: array<u32>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> mins: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const WG: u32 = ELEMENTWISE_WG;

@compute @workgroup_size(ELEMENTWISE_WG, 1, 1)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    if (e >= p.n * p.d) {
        return;
    }
    let t = e / p.d;
    let c = e % p.d;
    let id = ids[t];
    if (id < p.row0 || id >= p.row0 + p.rows) {
        return;
    }
    out[e] = dequant((id - p.row0) * p.d + c) * p.scale;
}
