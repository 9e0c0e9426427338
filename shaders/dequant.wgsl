// Dequantization of repacked GGUF weights; prepended to kernels that read weights.
// The host prepends `const FORMAT: u32 = …;` (one pipeline per format).
//
// Repacked layout (see src/backends/gpu/weights.rs), element e of a matrix, block b = e / 32:
//   FORMAT_Q4  (Q4_0, Q4_1): quants[b*4 .. b*4+4] hold the 16 GGUF bytes; byte j has element j
//              in its low nibble and element j+16 in its high nibble; value = q * scales[b] + mins[b]
//              (Q4_0 is stored with mins[b] = -8 * scales[b]).
//   FORMAT_Q8  (Q8_0): quants[b*8 .. b*8+8] hold 32 signed bytes; value = q * scales[b].
//              Q4_K is stored so too: each 32-element sub-block gets scales = d·sc, mins = −dmin·m.
//   FORMAT_Q8  (Q8_0, and Q5_0 as q − 16): quants[b*8 .. b*8+8] hold 32 signed bytes; value = q * scales[b].
//   FORMAT_Q8S16 (Q6_K as q − 32): signed bytes as FORMAT_Q8, one scale (d·sc) per 16 elements.
//   FORMAT_F32 (F32, F16, BF16 widened exactly): quants[e] holds the f32 bits.
// The FORMAT_* values come from src/backends/gpu/weights.rs (the host prepends them).
const QK: u32 = 32u;

fn dequant(e: u32) -> f32 {
    if (FORMAT == FORMAT_F32) {
        return bitcast<f32>(quants[e]);
    }
    let b = e / QK;
    let i = e % QK;
    if (FORMAT == FORMAT_Q4) {
        let j = i % 16u;
        let byte = (quants[b * 4u + j / 4u] >> ((j % 4u) * 8u)) & 0xffu;
        let q = (byte >> ((i / 16u) * 4u)) & 0xfu;
        return f32(q) * scales[b] + mins[b];
    }
    let byte = (quants[e / 4u] >> ((e % 4u) * 8u)) & 0xffu;
    let q = (i32(byte) << 24u) >> 24u;
    if (FORMAT == FORMAT_Q8S16) {
        return f32(q) * scales[e / 16u];
    }
    return f32(q) * scales[b];
}
