//! `attnlab generate`: the model writes, one token per step over its KV cache.

use std::io::Write;

use attnlab::backends::gpu::GpuBackend;
use attnlab::generate::{generate, Decoder, GenOptions, Sampling, Variant};
use attnlab::model::arch::{AttnChange, CachePolicy};

use crate::common::{load, read_text};
use crate::BackendChoice;

/// How the model writes, as the command line says it (`--policy`, `--window`, `--sinks`,
/// `--what`, `--layers`).
pub struct Writing {
    pub policy: String,
    pub window: usize,
    pub sinks: usize,
    pub what: Option<String>,
    pub layers: String,
}

impl Writing {
    fn variant(&self, n_layer: usize) -> Result<Variant, String> {
        let policy = CachePolicy::parse(&self.policy, self.window, self.sinks).ok_or_else(|| format!("--policy {}: one of dense, window, sinks+window, no-key0", self.policy))?;
        let change = match &self.what {
            None => None,
            Some(w) => {
                let what = AttnChange::parse(w).ok_or_else(|| format!("--what {w}: one of {}", AttnChange::ALL.map(|c| c.name()).join(", ")))?;
                let (a, b) = attnlab::analysis::through_model::parse_layers(&self.layers, n_layer)?;
                Some((what, a, b))
            }
        };
        Ok(Variant { policy, change })
    }
}

/// `what`: at most how many tokens, how they are chosen, whether to go past the end-of-text
/// token, and the texts that end the output.
#[allow(clippy::too_many_arguments)]
pub fn run(model_path: &str, text: &str, what: (usize, Sampling, bool, Vec<String>), chat: bool, heads: &str, writing: &Writing, choice: BackendChoice, json: bool) -> Result<(), String> {
    let (max_tokens, sampling, ignore_eos, stop) = what;
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let variant = writing.variant(model.config.n_layer)?;
    let heads = if heads.trim().is_empty() { vec![] } else { attnlab::analysis::heads::parse_heads(heads, model.config.n_layer, model.config.n_head).map_err(|e| e.to_string())? };
    // --chat: the text becomes a user's message in the file's chat template, and what is
    // printed is the whole prompt the model reads (system message and turn markers included).
    let (text, ids) = if chat {
        let prompt = attnlab::model::chat::chat_prompt(&model, &text).map_err(|e| format!("--chat: {e}"))?;
        let ids = attnlab::model::chat::encode_prompt(&model, &prompt);
        (prompt, ids)
    } else {
        let ids = model.tokenizer.encode(&text);
        (text, ids)
    };
    let options = GenOptions { max_tokens, sampling, ignore_eos, heads, stop, variant, ..Default::default() };
    attnlab::generate::check(&model, &ids, &options)?;
    let capacity = attnlab::generate::capacity(&model, ids.len(), &options);
    let gpu;
    let decoder = match choice {
        BackendChoice::Cpu => Decoder::cpu(&model, capacity),
        BackendChoice::Gpu => {
            gpu = GpuBackend::new().map_err(|e| format!("{e}; use --backend cpu, or WGPU_BACKEND=vulkan with Mesa's lavapipe (mesa-vulkan-drivers) for a software GPU"))?;
            Decoder::gpu(&gpu, &model, capacity)
        }
    };
    // The text as it comes: the decoded suffix each new token adds (a character split over
    // several byte tokens appears when it is whole).
    let (mut so_far, mut shown) = (Vec::new(), String::new());
    let mut stdout = std::io::stdout();
    if !json {
        print!("{text}");
    }
    let mut on_token = |t: u32| {
        if json {
            return;
        }
        so_far.push(t);
        if let Ok(s) = model.tokenizer.decode(&so_far) {
            if let Some(new) = s.strip_prefix(shown.as_str()) {
                print!("{new}");
                let _ = stdout.flush();
            }
            shown = s;
        }
    };
    let g = pollster::block_on(generate(decoder, &model, &ids, &options, &mut on_token))?;
    if json {
        println!("{}", serde_json::to_string(&g).map_err(|e| e.to_string())?);
    } else {
        let decode: f64 = g.timings_ms.decode.iter().sum();
        let per = decode / g.timings_ms.decode.len().max(1) as f64;
        if !variant.is_plain() {
            let last = g.ids.len() + g.generated.len().max(1) - 2;
            let how = if variant.needs_recompute() { " (no causal mask: every step reads the whole text again, no cache)".to_string() } else { format!("; the last step read {} of its {} cached keys per layer", variant.keys_read(last), last + 1) };
            eprintln!("\n\nwritten under {}{how}", variant.name());
        }
        eprintln!("\n\n{} prompt tokens read in {:.0} ms; {} tokens written, {:.1} ms each ({:.1} tokens/s) on the {}; KV cache {:.1} MiB", g.ids.len(), g.timings_ms.prefill, g.generated.len(), per, 1e3 / per.max(1e-9), g.backend, g.kv_cache_bytes as f64 / (1 << 20) as f64);
    }
    Ok(())
}
