//! Which WebGPU adapter is worth using. A software adapter (SwiftShader in Chrome without a
//! GPU, Mesa's llvmpipe/lavapipe, Microsoft Basic Render Driver/WARP) runs our kernels on the
//! CPU through an emulation layer, 10–30× slower than the CPU worker: the page then runs on
//! the CPU by default and says why.

/// What an adapter is, from the words it gives about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterKind {
    Hardware,
    /// A renderer on the CPU; the string names it for the badge.
    Software(String),
}

/// Names of software renderers, as they appear in an adapter's vendor, architecture,
/// description or driver (lower case).
const SOFTWARE: [(&str, &str); 7] = [
    ("swiftshader", "SwiftShader"),
    ("llvmpipe", "llvmpipe"),
    ("lavapipe", "lavapipe"),
    ("softpipe", "softpipe"),
    ("basic render", "Microsoft Basic Render Driver"),
    ("warp", "WARP"),
    ("subzero", "SwiftShader"),
];

/// Classifies an adapter from `GPUAdapterInfo` (vendor, architecture, description) or wgpu's
/// `AdapterInfo` (name, driver, driver info), and whether it calls itself a CPU or fallback
/// adapter.
pub fn classify(words: &[&str], cpu_or_fallback: bool) -> AdapterKind {
    let all = words.join(" ").to_lowercase();
    let tokens: Vec<&str> = all.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    // Phrases anywhere; "warp" only as a word of its own; other names inside a word too.
    let found = |k: &str| if k.contains(' ') { all.contains(k) } else if k == "warp" { tokens.contains(&k) } else { tokens.iter().any(|w| w.contains(k)) };
    if let Some((_, name)) = SOFTWARE.iter().find(|(k, _)| found(k)) {
        return AdapterKind::Software(name.to_string());
    }
    if cpu_or_fallback {
        return AdapterKind::Software("a fallback (CPU) adapter".to_string());
    }
    AdapterKind::Hardware
}

/// The CPU worker's default note when the adapter is a software one.
pub fn software_note(name: &str) -> String {
    format!("the WebGPU adapter is {name}, a software renderer: the CPU worker is faster here (add ?backend=webgpu to use it anyway)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_adapters_are_recognised() {
        // Chrome's SwiftShader (GPUAdapterInfo vendor / architecture / description).
        assert_eq!(classify(&["google", "swiftshader", ""], false), AdapterKind::Software("SwiftShader".into()));
        assert_eq!(classify(&["", "", "SwiftShader Device (Subzero)"], false), AdapterKind::Software("SwiftShader".into()));
        // wgpu on Mesa (name, driver, driver info).
        assert_eq!(classify(&["llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe", "Mesa 22.3.6"], false), AdapterKind::Software("llvmpipe".into()));
        assert_eq!(classify(&["Microsoft Basic Render Driver", "", ""], false), AdapterKind::Software("Microsoft Basic Render Driver".into()));
        assert_eq!(classify(&["", "", ""], true), AdapterKind::Software("a fallback (CPU) adapter".into()));
    }

    #[test]
    fn hardware_adapters_are_kept() {
        for words in [["nvidia", "hopper", "NVIDIA H100 80GB HBM3"], ["apple", "metal-3", ""], ["intel", "gen-12lp", "Intel(R) UHD Graphics 770"], ["amd", "rdna-3", ""], ["", "", ""]] {
            assert_eq!(classify(&words, false), AdapterKind::Hardware, "{words:?}");
        }
        // "warp" only as a word of its own name, not inside another word.
        assert_eq!(classify(&["nvidia", "", "warpath"], false), AdapterKind::Hardware);
        assert_eq!(classify(&["microsoft", "", "Microsoft WARP"], false), AdapterKind::Software("WARP".into()));
    }
}
