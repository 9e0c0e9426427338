//! `attnlab explain`: inside one head, step by step, with what-ifs.

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

pub fn run(model_path: &str, text: &str, layer: usize, head: usize, query: Option<usize>, choice: BackendChoice, json: bool) -> Result<(), String> {
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let b = backend(choice)?;
    let e = attnlab::analysis::explain::explain_text(&model, &b, &text, layer, head, query).map_err(|e| e.to_string())?;
    report_fallback(&b);
    if json {
        println!("{}", serde_json::to_string(&e).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("layer {} head {} (KV head {}), query {} {:?}, head size {}{}", e.layer, e.head, e.kv_head, e.query, e.tokens[e.query], e.head_dim, e.window.map(|w| format!(", sliding window {w}")).unwrap_or_default());
    println!("| key | token | q·k | ÷√d | softmax | ‖v‖ | ‖p·v‖ | no √d | no mask | no RoPE |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for j in 0..=e.query {
        println!("| {j} | {:?} | {:.3} | {:.3} | {:.4} | {:.3} | {:.4} | {:.4} | {:.4} | {:.4} |", e.tokens[j], e.dot[j], e.scores[j], e.probs[j], e.value_norms[j], e.contrib_norms[j], e.probs_unscaled[j], e.probs_unmasked[j], e.probs_no_rope[j]);
    }
    let future = e.probs_unmasked[e.query + 1..].iter().fold(0.0f32, |a, b| a + b);
    println!("
entropy {:.3} nats (no √d: {:.3}; no RoPE: {:.3}); without the mask {:.1}% of the attention goes to future tokens", e.entropy, attnlab::analysis::explain::entropy(&e.probs_unscaled), attnlab::analysis::explain::entropy(&e.probs_no_rope), future * 100.0);
    Ok(())
}
