//! `attnlab ablate`: knock heads out and compare the predictions.

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

pub fn run(model_path: &str, text: &str, list: &str, choice: BackendChoice, json: bool) -> Result<(), String> {
    use attnlab::analysis::heads;
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let b = backend(choice)?;
    let hs = heads::parse_heads(list, model.config.n_layer, model.config.n_head).map_err(|e| e.to_string())?;
    let a = heads::ablate(&model, &b, &text, &hs).map_err(|e| e.to_string())?;
    report_fallback(&b);
    if json {
        println!("{}", serde_json::to_string(&a).map_err(|e| e.to_string())?);
    } else {
        println!("knocked out: {}; KL(before ‖ after) at the last position: {:.4} nats", a.heads.join(", "), a.kl_last);
        let show = |t: &[(u32, f32)]| t.iter().take(5).map(|(id, l)| format!("{:?} {l:.2}", model.tokenizer.token_text(*id))).collect::<Vec<_>>().join(", ");
        println!("next token before: {}
next token after:  {}", show(&a.last_logits_top_before), show(&a.last_logits_top));
        let tokens: Vec<String> = a.ids.iter().map(|&id| model.tokenizer.token_text(id)).collect();
        for (i, d) in a.delta_logprob.iter().enumerate() {
            println!("  {:>4} {:?} → {:?}: Δ log p = {d:+.3}", i, tokens[i], tokens[i + 1]);
        }
    }
    Ok(())
}
