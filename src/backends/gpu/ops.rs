//! One function per kernel: its uniform parameters, its bindings and its dispatch maths.
//! Each records into a caller's encoder, so a whole forward pass is one submission.

use bytemuck::{Pod, Zeroable};

use super::context::{sources, sources::DotOperands, GpuContext, MatmulKernel, Slot, Work};
use super::weights::GpuMatrix;
pub use crate::model::arch::AttnShape;
use crate::model::arch::{Act, NormKind, RopeStyle};

/// Workgroup geometry: defined here only, and prepended to every kernel as WGSL constants
/// ([`wgsl_constants`]), so the dispatch maths below and the shaders cannot disagree.
pub const MATMUL_TILE_ROWS: u32 = 64;
pub const MATMUL_TILE_TOKENS: u32 = 32;
/// Up to this many tokens a matmul runs as `gemv` (`GEMV_ROWS` weight rows per workgroup).
pub const GEMV_MAX_N: u32 = 4;
pub const GEMV_ROWS: u32 = 8;
/// `matmul_reg`: weight rows × tokens of y per invocation (8 × 8 invocations per workgroup).
pub const REG_ROWS: u32 = 8;
pub const REG_TOKENS: u32 = 8;
pub const ELEMENTWISE_WG: u32 = 256;
/// RMSNorm: invocations per row (one workgroup each). On lavapipe 64 took 38 ms of a 128-token
/// forward pass where 256 took 89 (most of 256 invocations idle on 576-wide rows).
pub const NORM_WG: u32 = 64;
pub const FLASH_WG: u32 = 64;
pub const NAIVE_TILE: u32 = 16;
/// Flash-decoding ([`decode_attention`]): keys per chunk (one workgroup each, a multiple of
/// `FLASH_WG`) and the most new queries a step may have to take it.
pub const DECODE_CHUNK: u32 = 256;
pub const DECODE_MAX_N: u32 = 4;
/// Steps over at least this many keys (`past + n`) take it.
pub const DECODE_MIN_KEYS: usize = 256;

/// The constants above as WGSL, for the kernel prelude.
pub fn wgsl_constants() -> String {
    format!(
        "const MATMUL_TILE_R: u32 = {MATMUL_TILE_ROWS}u;\nconst MATMUL_TILE_N: u32 = {MATMUL_TILE_TOKENS}u;\nconst GEMV_MAX_N: u32 = {GEMV_MAX_N}u;\nconst GEMV_ROWS: u32 = {GEMV_ROWS}u;\nconst REG_ROWS: u32 = {REG_ROWS}u;\nconst REG_TOKENS: u32 = {REG_TOKENS}u;\nconst ELEMENTWISE_WG: u32 = {ELEMENTWISE_WG}u;\nconst NORM_WG: u32 = {NORM_WG}u;\nconst FLASH_WG: u32 = {FLASH_WG}u;\nconst MAP_TILE: u32 = {NAIVE_TILE}u;\nconst DECODE_CHUNK: u32 = {DECODE_CHUNK}u;\nconst DECODE_MAX_N: u32 = {DECODE_MAX_N}u;\n"
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    n: u32,
    rows: u32,
    cols: u32,
    x_row0: u32,
    out_stride: u32,
    out_col0: u32,
    _pad: [u32; 2],
}

const WEIGHT_SLOTS: [Slot; 6] = [Slot::Uniform, Slot::Read, Slot::Read, Slot::Read, Slot::Read, Slot::ReadWrite];

/// `y[t, :] = x[x_row0 + t, :] · Wᵀ` for t < n.  x: (*, cols), y: (n, w.rows).
/// The context's [`MatmulKernel`] picks `matmul_reg.wgsl` (any matrix of whole 32-column blocks)
/// or `matmul.wgsl`; up to [`GEMV_MAX_N`] tokens their `gemv` entry points run instead.
pub fn matmul(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, x_row0: usize, n: usize, w: &GpuMatrix, y: &wgpu::Buffer) {
    matmul_with(ctx, ctx.matmul_kernel(), enc, x, x_row0, n, w, y)
}

/// [`matmul`] with the kernel named (tests run both side by side on one context).
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(ctx: &GpuContext, kernel: MatmulKernel, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, x_row0: usize, n: usize, w: &GpuMatrix, y: &wgpu::Buffer) {
    let few = n as u32 <= GEMV_MAX_N && w.parts.iter().all(|p| (p.rows as u32).div_ceil(GEMV_ROWS) <= 65_535);
    // The register kernel walks whole 32-column blocks (every quantized matrix has them).
    let reg = w.cols % 32 == 0 && kernel == MatmulKernel::Registers;
    let entry = match (few, reg) { (true, false) => "gemv", (true, true) => "gemv_reg", (false, true) => "matmul_reg", (false, false) => "matmul" };
    let src = if reg { sources::MATMUL_REG } else { sources::MATMUL };
    let k = ctx.kernel(&format!("{entry}/{}", w.format), || sources::with_format(src, w.format), entry, &WEIGHT_SLOTS);
    for part in &w.parts {
        let p = MatmulParams { n: n as u32, rows: part.rows as u32, cols: w.cols as u32, x_row0: x_row0 as u32, out_stride: w.rows as u32, out_col0: part.row0 as u32, _pad: [0; 2] };
        let u = ctx.uniform("matmul params", &p);
        let groups = if few { ((part.rows as u32).div_ceil(GEMV_ROWS), 1, 1) } else if reg { ((part.rows as u32).div_ceil(8 * REG_ROWS), (n as u32).div_ceil(8 * REG_TOKENS), 1) } else { ((part.rows as u32).div_ceil(MATMUL_TILE_ROWS), (n as u32).div_ceil(MATMUL_TILE_TOKENS), 1) };
        let weight_bytes = (part.quants.size() + part.scales.size() + part.mins.size()) as f64;
        let work = Work { flops: 2.0 * (n * part.rows * w.cols) as f64, bytes: weight_bytes + 4.0 * (n * w.cols + n * part.rows) as f64 };
        ctx.dispatch_work(enc, &w.name, &k, &[&u, &part.quants, &part.scales, &part.mins, x, y], groups, work);
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Dims4 {
    a: u32,
    b: u32,
    c: u32,
    d: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmbedParams {
    n: u32,
    d: u32,
    row0: u32,
    rows: u32,
    scale: f32,
    _pad: [u32; 3],
}

/// out (n, d) = `scale` · rows `ids` of the embedding matrix.
pub fn embed(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, ids: &wgpu::Buffer, n: usize, w: &GpuMatrix, scale: f32, out: &wgpu::Buffer) {
    let k = ctx.kernel(&format!("embed/{}", w.format), || sources::with_format(sources::EMBED, w.format), "embed", &WEIGHT_SLOTS);
    // One dispatch per row part (a vocabulary larger than one binding is split by rows);
    // each writes the tokens whose ids fall in its rows.
    for part in &w.parts {
        let u = ctx.uniform("embed params", &EmbedParams { n: n as u32, d: w.cols as u32, row0: part.row0 as u32, rows: part.rows as u32, scale, _pad: [0; 3] });
        let groups = (((n * w.cols) as u32).div_ceil(ELEMENTWISE_WG), 1, 1);
        ctx.dispatch(enc, "embed", &k, &[&u, &part.quants, &part.scales, &part.mins, ids, out], groups);
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    n: u32,
    d: u32,
    eps: f32,
    layer: u32,
    has_bias: u32,
    _pad: [u32; 3],
}

/// A norm's weights as the kernel takes them: kind, scale, optional bias, epsilon.
pub struct NormWeights<'a> {
    pub kind: NormKind,
    pub w: &'a wgpu::Buffer,
    pub bias: Option<&'a wgpu::Buffer>,
    pub eps: f32,
}

/// The three entry points of `rmsnorm.wgsl` (RMSNorm or LayerNorm, optional bias) share one
/// layout: params, b (the added branch), w, x (read-write), y, bias. Rows of d values.
#[allow(clippy::too_many_arguments)]
fn norm_pass(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, entry: &'static str, b: Option<&wgpu::Buffer>, nw: &NormWeights, x: &wgpu::Buffer, y: Option<&wgpu::Buffer>, n: usize, d: usize) {
    let k = ctx.kernel(entry, || sources::RMSNORM.to_string(), entry, &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite, Slot::ReadWrite, Slot::Read]);
    let u = ctx.uniform("norm params", &NormParams { n: n as u32, d: d as u32, eps: nw.eps, layer: (nw.kind == NormKind::Layer) as u32, has_bias: nw.bias.is_some() as u32, _pad: [0; 3] });
    // Bindings an entry point does not use still need a buffer: a one-word dummy each.
    let (dummy_b, dummy_y, dummy_bias) = (ctx.scratch("unused", 1), ctx.scratch("unused", 1), ctx.scratch("unused", 1));
    ctx.dispatch(enc, entry, &k, &[&u, b.unwrap_or(&dummy_b), nw.w, x, y.unwrap_or(&dummy_y), nw.bias.unwrap_or(&dummy_bias)], (n as u32, 1, 1));
}

/// y (n, d) = norm(x).
pub fn norm(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, nw: &NormWeights, x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize, d: usize) {
    norm_pass(ctx, enc, "norm", None, nw, x, Some(y), n, d)
}

/// x (n, d) = norm(x), in place.
pub fn norm_in_place(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, nw: &NormWeights, x: &wgpu::Buffer, n: usize, d: usize) {
    norm_pass(ctx, enc, "norm_in_place", None, nw, x, None, n, d)
}

/// x (n, d) += b, then y (n, d) = norm(x): the residual add and the next norm in one pass.
#[allow(clippy::too_many_arguments)]
pub fn add_norm(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, b: &wgpu::Buffer, nw: &NormWeights, y: &wgpu::Buffer, n: usize, d: usize) {
    norm_pass(ctx, enc, "add_norm", Some(b), nw, x, Some(y), n, d)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RopeParams {
    n: u32,
    heads: u32,
    head_dim: u32,
    half: u32,
    halves: u32,
    _pad: [u32; 3],
}

/// RoPE in place on x (n, heads · head_dim) with a host-made (n, half, 2) cos/sin table.
#[allow(clippy::too_many_arguments)]
pub fn rope(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, table: &wgpu::Buffer, n: usize, heads: usize, head_dim: usize, rope_dim: usize, style: RopeStyle) {
    let k = ctx.kernel("rope", || sources::ROPE.to_string(), "rope", &[Slot::Uniform, Slot::Read, Slot::ReadWrite]);
    let half = rope_dim / 2;
    let u = ctx.uniform("rope params", &RopeParams { n: n as u32, heads: heads as u32, head_dim: head_dim as u32, half: half as u32, halves: (style == RopeStyle::Halves) as u32, _pad: [0; 3] });
    ctx.dispatch(enc, "rope", &k, &[&u, table, x], (((n * heads * half) as u32).div_ceil(ELEMENTWISE_WG), 1, 1));
}

/// The (n, rope_dim/2, 2) cos/sin table of positions `start .. start + n`, computed exactly as
/// the CPU engine does.
pub fn rope_table(start: usize, n: usize, rope_dim: usize, base: f32) -> Vec<f32> {
    let half = rope_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / base.powf((2 * i) as f32 / rope_dim as f32)).collect();
    let mut t = Vec::with_capacity(n * half * 2);
    for p in start..start + n {
        for f in &inv_freq {
            let (s, c) = (p as f32 * f).sin_cos();
            t.push(c);
            t.push(s);
        }
    }
    t
}

/// An `elementwise.wgsl` entry over `len` values of a; b is read (as `b[e % row]` where the
/// entry says so; `None` binds a one-word dummy).
fn elementwise(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, entry: &str, a: &wgpu::Buffer, b: Option<&wgpu::Buffer>, len: usize, row: usize) {
    let k = ctx.kernel(&format!("elementwise/{entry}"), || sources::ELEMENTWISE.to_string(), entry, &[Slot::Uniform, Slot::Read, Slot::ReadWrite]);
    let u = ctx.uniform("elementwise params", &Dims4 { a: len as u32, b: row as u32, c: 0, d: 0 });
    let dummy;
    let b = match b {
        Some(b) => b,
        None => {
            dummy = ctx.scratch("unused", 1);
            &dummy
        }
    };
    ctx.dispatch(enc, entry, &k, &[&u, b, a], ((len as u32).div_ceil(ELEMENTWISE_WG), 1, 1));
}

/// a (len) += b (len).
pub fn add(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, a: &wgpu::Buffer, b: &wgpu::Buffer, len: usize) {
    elementwise(ctx, enc, "add", a, Some(b), len, 0)
}

/// a (len / row, row) += bias (row) on every row.
pub fn add_bias(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, a: &wgpu::Buffer, bias: &wgpu::Buffer, len: usize, row: usize) {
    elementwise(ctx, enc, "add_bias", a, Some(bias), len, row)
}

/// a = act(a) (len values).
pub fn activate(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, act: Act, a: &wgpu::Buffer, len: usize) {
    let entry = match act {
        Act::Silu => "silu_only",
        Act::GeluTanh => "gelu",
    };
    elementwise(ctx, enc, entry, a, None, len, 0)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ArgmaxParams {
    rows: u32,
    width: u32,
    out_at: u32,
    _pad: u32,
}

/// out[out_at + r] = argmax of row r of x (rows, width), lowest index on ties, as f32.
pub fn argmax_rows(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, rows: usize, width: usize, out: &wgpu::Buffer, out_at: usize) {
    let k = ctx.kernel("argmax", || sources::ARGMAX.to_string(), "argmax", &[Slot::Uniform, Slot::Read, Slot::ReadWrite]);
    let u = ctx.uniform("argmax params", &ArgmaxParams { rows: rows as u32, width: width as u32, out_at: out_at as u32, _pad: 0 });
    ctx.dispatch(enc, "argmax", &k, &[&u, x, out], (rows as u32, 1, 1));
}

/// Zeroes heads `heads` (a mask of up to 32) in every row of x (n, n_head · head_dim).
pub fn zero_heads(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, x: &wgpu::Buffer, n: usize, n_head: usize, head_dim: usize, heads: &[usize]) {
    assert!(n_head <= 32, "head knock-outs on the GPU support up to 32 heads per layer");
    let mask = heads.iter().fold(0u32, |m, &h| m | (1 << h));
    let len = n * n_head * head_dim;
    let k = ctx.kernel("elementwise/zero_heads", || sources::ELEMENTWISE.to_string(), "zero_heads", &[Slot::Uniform, Slot::Read, Slot::ReadWrite]);
    let u = ctx.uniform("zero heads params", &Dims4 { a: len as u32, b: (n_head * head_dim) as u32, c: head_dim as u32, d: mask });
    // `b` is unused by this entry point; the layout is the elementwise one (x bound twice is
    // not allowed, so a one-word dummy stands in for it).
    let dummy = ctx.scratch("unused", 1);
    ctx.dispatch(enc, "zero heads", &k, &[&u, &dummy, x], ((len as u32).div_ceil(ELEMENTWISE_WG), 1, 1));
}

/// gate = gelu_tanh(gate) · up (len values).
pub fn geglu(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, gate: &wgpu::Buffer, up: &wgpu::Buffer, len: usize) {
    elementwise(ctx, enc, "geglu", gate, Some(up), len, 0)
}

/// gate = silu(gate) · up (len values).
pub fn swiglu(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, gate: &wgpu::Buffer, up: &wgpu::Buffer, len: usize) {
    elementwise(ctx, enc, "swiglu", gate, Some(up), len, 0)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttnParams {
    n: u32,
    n_head: u32,
    n_kv: u32,
    group: u32,
    /// Flash: queries per workgroup; naive: the pass's first head; decode: the first chunk.
    q_tile_or_h0: u32,
    scale: f32,
    window: u32,
    past: u32,
    /// The key rule ([`crate::model::arch::KeyRule`]): sinks kept, key 0 hidden (0/1), no causal mask (0/1).
    sinks: u32,
    hide_first: u32,
    unmasked: u32,
    _pad: u32,
}

impl AttnParams {
    /// The parameters of `s` (`first`: flash's queries per workgroup, decode's first chunk).
    fn of(s: AttnShape, first: usize) -> AttnParams {
        let k = s.keys;
        AttnParams { n: s.n as u32, n_head: s.n_head as u32, n_kv: s.n_kv as u32, group: s.group() as u32, q_tile_or_h0: first as u32, scale: s.scale(), window: s.window.unwrap_or(0) as u32, past: s.past as u32, sinks: k.sinks as u32, hide_first: k.hide_first as u32, unmasked: k.unmasked as u32, _pad: 0 }
    }
}

/// Query positions per flash workgroup.
pub fn flash_q_tile(s: AttnShape) -> usize {
    (FLASH_WG as usize / s.group()).max(1)
}

/// Flash attention of the n new queries q (positions past ..) over the first past + n rows of
/// k and v (a KV cache): o (n, n_head·hd) and lse (n, n_head). Scratch: none beyond
/// 8 KiB of workgroup memory per workgroup.
pub fn flash_attention(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, s: AttnShape, q: &wgpu::Buffer, k: &wgpu::Buffer, v: &wgpu::Buffer, o: &wgpu::Buffer, lse: &wgpu::Buffer) {
    assert!(s.group() <= FLASH_WG as usize, "more than {FLASH_WG} query heads per KV head");
    let kern = ctx.kernel(&format!("flash/{}", s.head_dim), || sources::with_head_dim(sources::FLASH_ATTENTION, s.head_dim, DotOperands::RegistersAndTile), "flash_attention", &[Slot::Uniform, Slot::Read, Slot::Read, Slot::Read, Slot::ReadWrite, Slot::ReadWrite]);
    let q_tile = flash_q_tile(s);
    let u = ctx.uniform("flash params", &AttnParams::of(s, q_tile));
    // q·k and p·v over the causal (or windowed) pairs of every query head.
    let pairs = crate::model::arch::causal_pairs(s.kv_len(), s.window) - crate::model::arch::causal_pairs(s.past, s.window);
    let work = Work { flops: 4.0 * s.head_dim as f64 * pairs * s.n_head as f64, bytes: 4.0 * (s.n * 2 * s.n_head * s.head_dim + s.kv_len() * 2 * s.n_kv * s.head_dim + s.n * s.n_head) as f64 };
    ctx.dispatch_work(enc, "flash attention", &kern, &[&u, q, k, v, o, lse], ((s.n as u32).div_ceil(q_tile as u32), s.n_kv as u32, 1), work);
}

/// Whether a call takes the flash-decoding path: few new queries over a long cache.
pub fn splits_decode(s: AttnShape) -> bool {
    s.n >= 1 && s.n <= DECODE_MAX_N as usize && s.kv_len() >= DECODE_MIN_KEYS
}

/// The chunks of [`DECODE_CHUNK`] keys a decode call reads: (first, count). The first is the
/// oldest chunk the first query's window reaches (0 without a window); the last holds key
/// `past + n - 1`.
pub fn decode_chunks(s: AttnShape) -> (usize, usize) {
    let chunk = DECODE_CHUNK as usize;
    let first = s.first_key(s.past) / chunk;
    (first, s.kv_len().div_ceil(chunk) - first)
}

/// Query heads per flash-decoding workgroup: the most of one KV head's group (a divisor of it)
/// whose n · heads rows fit the workgroup memory the kernel is sized for ([`DECODE_MAX_N`]
/// rows), so that they read each key and value once.
pub fn decode_heads_per_workgroup(s: AttnShape) -> usize {
    let rows = DECODE_MAX_N as usize / s.n.max(1);
    (1..=s.group().min(rows)).rev().find(|d| s.group() % d == 0).unwrap_or(1)
}

/// Attention as the model's pass records it: [`decode_attention`] for a step of few queries
/// over a long cache ([`splits_decode`]; unless the context turns it off), else
/// [`flash_attention`]. Same inputs and outputs.
#[allow(clippy::too_many_arguments)]
pub fn attention(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, s: AttnShape, q: &wgpu::Buffer, k: &wgpu::Buffer, v: &wgpu::Buffer, o: &wgpu::Buffer, lse: &wgpu::Buffer) {
    if ctx.split_decode() && splits_decode(s) {
        decode_attention(ctx, enc, s, q, k, v, o, lse)
    } else {
        flash_attention(ctx, enc, s, q, k, v, o, lse)
    }
}

/// Flash-decoding: [`flash_attention`]'s outputs (o (n, n_head·hd), lse (n, n_head)) for
/// n ≤ [`DECODE_MAX_N`] queries, the keys split into chunks of [`DECODE_CHUNK`], one workgroup
/// per ([`decode_heads_per_workgroup`] query heads of one KV head, chunk) writing each head's
/// partial output, max and sum; a second pass merges the chunks of each (query, head) with the
/// log-sum-exp rule. Scratch: (chunks, n, n_head, hd + 2) floats.
#[allow(clippy::too_many_arguments)]
pub fn decode_attention(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, s: AttnShape, q: &wgpu::Buffer, k: &wgpu::Buffer, v: &wgpu::Buffer, o: &wgpu::Buffer, lse: &wgpu::Buffer) {
    assert!((1..=DECODE_MAX_N as usize).contains(&s.n), "flash-decoding takes 1 to {DECODE_MAX_N} queries, not {}", s.n);
    let (first, chunks) = decode_chunks(s);
    assert!(chunks <= 65_535, "{} keys: more chunks than one dispatch dimension holds", s.kv_len());
    // The chunk kernel is built for this n and its heads per workgroup (its loops over rows
    // unroll); the merge reads n.
    let heads = decode_heads_per_workgroup(s);
    let src = || sources::with_decode_rows(&sources::with_head_dim(sources::FLASH_ATTENTION, s.head_dim, DotOperands::RegistersAndTile), s.n, heads);
    let slots = [Slot::Uniform, Slot::Read, Slot::Read, Slot::Read, Slot::ReadWrite, Slot::ReadWrite, Slot::ReadWrite, Slot::ReadWrite];
    let k_chunks = ctx.kernel(&format!("decode/chunks/{}/{}/{heads}", s.head_dim, s.n), src, "decode_chunks", &slots);
    let k_merge = ctx.kernel(&format!("decode/merge/{}", s.head_dim), src, "decode_merge", &slots);
    let u = ctx.uniform("decode params", &AttnParams::of(s, first));
    let parts = chunks * s.n * s.n_head;
    let (part_o, part_ml) = (ctx.scratch("decode partial outputs", parts * s.head_dim), ctx.scratch("decode partial max and sum", parts * 2));
    let b: [&wgpu::Buffer; 8] = [&u, q, k, v, o, lse, &part_o, &part_ml];
    // Each workgroup reads its KV head's chunk once for its heads.
    let pairs = crate::model::arch::causal_pairs(s.kv_len(), s.window) - crate::model::arch::causal_pairs(s.past, s.window);
    let keys = s.kv_len() - first * DECODE_CHUNK as usize;
    let work = Work { flops: 4.0 * s.head_dim as f64 * pairs * s.n_head as f64, bytes: 4.0 * (s.n * 2 * s.n_head * s.head_dim + keys * 2 * (s.n_head / heads) * s.head_dim + parts * (s.head_dim + 2)) as f64 };
    ctx.dispatch_work(enc, "decode attention", &k_chunks, &b, ((s.n_head / heads) as u32, chunks as u32, 1), work);
    let merge = Work { flops: 0.0, bytes: 4.0 * (parts * (s.head_dim + 2) + s.n * s.n_head * (s.head_dim + 1)) as f64 };
    ctx.dispatch_work(enc, "decode attention merge", &k_merge, &b, ((s.n * s.n_head) as u32, 1, 1), merge);
}

/// Heads per naive pass so that S = (heads, n, n) fits one binding.
pub fn naive_heads_per_pass(ctx: &GpuContext, s: AttnShape) -> usize {
    let per_head = (s.n * s.n * 4) as u64;
    ((ctx.limits.max_storage_buffer_binding_size as u64 / per_head.max(1)) as usize).clamp(1, s.n_head)
}

/// Bytes of the S buffer the naive kernel needs.
pub fn naive_scratch_bytes(ctx: &GpuContext, s: AttnShape) -> usize {
    naive_heads_per_pass(ctx, s) * s.n * s.n * 4
}

/// Naive attention: materialises S for `naive_heads_per_pass` heads at a time in `scratch`
/// (at least `naive_scratch_bytes`).
pub fn naive_attention(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, s: AttnShape, q: &wgpu::Buffer, k: &wgpu::Buffer, v: &wgpu::Buffer, o: &wgpu::Buffer, lse: &wgpu::Buffer, scratch: &wgpu::Buffer) {
    let slots = [Slot::Uniform, Slot::Read, Slot::Read, Slot::Read, Slot::ReadWrite, Slot::ReadWrite, Slot::ReadWrite];
    assert!(s.window.is_none() && s.keys == crate::model::arch::KeyRule::default(), "the naive kernel (a benchmark baseline) has no sliding window and no key rule");
    let src = || sources::with_head_dim(sources::NAIVE_ATTENTION, s.head_dim, DotOperands::Storage);
    let k_scores = ctx.kernel(&format!("naive/scores/{}", s.head_dim), src, "scores", &slots);
    let k_softmax = ctx.kernel(&format!("naive/softmax/{}", s.head_dim), src, "softmax", &slots);
    let k_pv = ctx.kernel(&format!("naive/pv/{}", s.head_dim), src, "pv", &slots);
    let per_pass = naive_heads_per_pass(ctx, s);
    let n = s.n as u32;
    let mut h0 = 0;
    while h0 < s.n_head {
        let heads = per_pass.min(s.n_head - h0) as u32;
        let p = AttnParams::of(AttnShape { window: None, past: 0, ..s }, h0);
        let u = ctx.uniform("naive params", &p);
        let b: [&wgpu::Buffer; 7] = [&u, q, k, v, o, lse, scratch];
        ctx.dispatch(enc, "naive scores", &k_scores, &b, (n.div_ceil(NAIVE_TILE), n.div_ceil(NAIVE_TILE), heads));
        ctx.dispatch(enc, "naive softmax", &k_softmax, &b, (n, heads, 1));
        ctx.dispatch(enc, "naive pv", &k_pv, &b, ((s.head_dim as u32).div_ceil(NAIVE_TILE), n.div_ceil(NAIVE_TILE), heads));
        h0 += heads as usize;
    }
}
