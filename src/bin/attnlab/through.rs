//! `attnlab streaming` and `attnlab whatif`: the articles' claims through the whole model —
//! which keys a query may read (cache policies), and what-ifs inside attention.

use attnlab::analysis::through_model::{streaming, whatif};
use attnlab::model::arch::AttnChange;

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

/// Perplexity of `text` under each cache policy (dense, window, sinks+window, no-key0).
pub fn run_streaming(model_path: &str, text: &str, window: usize, sinks: usize, max_tokens: Option<usize>, choice: BackendChoice, json: bool) -> Result<(), String> {
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let mut ids = model.tokenizer.encode(&text);
    if let Some(m) = max_tokens {
        ids.truncate(m);
    }
    if ids.len() > model.config.context_length {
        return Err(format!("{} tokens: this model reads at most {} (cut with --max-tokens)", ids.len(), model.config.context_length));
    }
    if window == 0 {
        return Err("--window must be at least 1".into());
    }
    let b = backend(choice)?;
    let s = streaming(&b, &model, &ids, window, sinks, |p| if !json { eprintln!("policy {p}…") }).map_err(|e| e.to_string())?;
    report_fallback(&b);
    if json {
        println!("{}", serde_json::to_string(&s).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("{} tokens, window {window}, {sinks} sink tokens", ids.len());
    println!("| policy | perplexity after token {window} | perplexity of all | worst drop in log p |");
    println!("|---|---|---|---|");
    let dense = &s.policies["dense"].logp;
    for name in ["dense", "window", "sinks+window", "no-key0"] {
        let r = &s.policies[name];
        let worst = r.logp.iter().zip(dense).map(|(a, b)| a - b).fold(0.0f32, f32::min);
        println!("| {name} | {:.2} | {:.2} | {worst:.2} |", r.ppl_after_window, r.ppl_all);
    }
    Ok(())
}

/// The next-token distribution with and without a what-if inside `layers`.
pub fn run_whatif(model_path: &str, text: &str, what: &str, layers: &str, choice: BackendChoice, json: bool) -> Result<(), String> {
    let what = AttnChange::parse(what).ok_or_else(|| format!("--what {what}: one of {}", AttnChange::ALL.map(|c| c.name()).join(", ")))?;
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let ids = model.tokenizer.encode(&text);
    let b = backend(choice)?;
    let w = whatif(&b, &model, &ids, what, layers)?;
    report_fallback(&b);
    if json {
        println!("{}", serde_json::to_string(&w).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let tok = &model.tokenizer;
    println!("{} in layers {}: KL(plain ‖ what-if) of the next token = {:.3} nats", what.name(), w.layers, w.kl_last);
    println!("| rank | plain | with {} |", what.name());
    println!("|---|---|---|");
    for r in 0..5 {
        let (a, b) = (w.last_logits_top_plain[r], w.last_logits_top[r]);
        println!("| {} | {:?} | {:?} |", r + 1, tok.token_text(a.0), tok.token_text(b.0));
    }
    let worst = w.delta_logprob.iter().enumerate().fold((0, 0.0f32), |m, (i, &d)| if d < m.1 { (i, d) } else { m });
    println!("hardest-hit prediction: {:?} after {:?}, log p {:+.2}", tok.token_text(ids[worst.0 + 1]), tok.token_text(ids[worst.0]), worst.1);
    Ok(())
}
