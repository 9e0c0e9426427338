//! naga parses and validates every kernel in `shaders/`, in every specialisation the engine
//! builds (each weight format, the head sizes of supported models). No GPU needed.

use attnlab::backends::gpu::context::sources;

fn validate(name: &str, src: &str) {
    // As the engine compiles it: the shared constants first.
    let src = &sources::with_prelude(src);
    let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
}

#[test]
fn every_shader_validates() {
    for format in 0..4 {
        validate(&format!("matmul/{format}"), &sources::with_format(sources::MATMUL, format));
        validate(&format!("matmul_reg/{format}"), &sources::with_format(sources::MATMUL_REG, format));
        validate(&format!("embed/{format}"), &sources::with_format(sources::EMBED, format));
    }
    validate("rmsnorm", sources::RMSNORM);
    validate("rope", sources::ROPE);
    validate("elementwise", sources::ELEMENTWISE);
    validate("argmax", sources::ARGMAX);
    use sources::DotOperands::{RegistersAndTile, Storage};
    for hd in [32, 64, 128, 256] {
        validate(&format!("flash/{hd}"), &sources::with_head_dim(sources::FLASH_ATTENTION, hd, RegistersAndTile));
        validate(&format!("naive/{hd}"), &sources::with_head_dim(sources::NAIVE_ATTENTION, hd, Storage));
        validate(&format!("maps/{hd}"), &sources::with_head_dim(sources::ATTENTION_MAPS, hd, Storage));
    }
}

#[test]
fn every_wgsl_file_is_covered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".wgsl")).collect();
    files.sort();
    assert_eq!(files, ["argmax.wgsl", "attention_maps.wgsl", "dequant.wgsl", "elementwise.wgsl", "embed.wgsl", "flash_attention.wgsl", "matmul.wgsl", "matmul_common.wgsl", "matmul_reg.wgsl", "naive_attention.wgsl", "rmsnorm.wgsl", "rope.wgsl"], "a new shader needs a line in every_shader_validates");
}
