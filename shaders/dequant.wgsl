// Dequantization of repacked GGUF weights; prepended to kernels that read weights.
// The host prepends `const FORMAT: u32 = …;` (one pipeline per format).
//
// Repacked layout (see src/backends/gpu/weights.rs), element e of a matrix, block b = e / 32:
//   FORMAT_Q4  (Q4_0, Q4_1): quants[b*4 .. b*4+4] hold the 16 GGUF bytes; byte j has element j
//              in its low nibble and element j+16 in its high nibble; value = q * scales[b] + mins[b]
//              (Q4_0 is stored with mins[b] = -8 * scales[b]).
//   FORMAT_Q8  (Q8_0): quants[b*8 .. b*8+8] hold 32 signed bytes; value = q * scales[b].
//   FORMAT_F32 (F32, F16, BF16 widened exactly): quants[e] holds the f32 bits.
const FORMAT_Q4: u32 = 0u;
const FORMAT_Q8: u32 = 1u;
const FORMAT_F32: u32 = 2u;
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
    let byte = (quants[b * 8u + i / 4u] >> ((i % 4u) * 8u)) & 0xffu;
    let q = (i32(byte) << 24u) >> 24u;
    return f32(q) * scales[b];
}
