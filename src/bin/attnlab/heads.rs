//! `attnlab heads`: every head's pattern scores, head similarity, the induction diagnostic.

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

#[allow(clippy::too_many_arguments)]
pub fn run(model_path: &str, text: Option<&str>, similarity: bool, induction: bool, period: usize, seed: u64, ids: Option<&str>, choice: BackendChoice, json: bool) -> Result<(), String> {
    use attnlab::analysis::heads;
    let (model, _) = load(model_path)?;
    let b = backend(choice)?;
    let mut out = serde_json::Map::new();
    if let Some(text) = text {
        let text = read_text(text)?;
        let s = heads::heads_text(&model, &b, &text, similarity).map_err(|e| e.to_string())?;
        if !json {
            let c = &model.config;
            let best = |g: &heads::Grid, name: &str| {
                println!("top {name} heads: {}", heads::ranked(g).iter().take(6).map(|(l, h, v)| format!("{l}.{h} {v:.3}")).collect::<Vec<_>>().join(", "));
            };
            best(&s.first_token, "first-token");
            best(&s.previous_token, "previous-token");
            best(&s.self_, "self");
            if let Some(sim) = heads::similarity(&s, c.n_head) {
                println!("{}", sim.summary);
                let name = |i: usize| format!("{}.{}", i / c.n_head, i % c.n_head);
                for (k, g) in sim.groups.iter().take(5).enumerate() {
                    println!("  group {}: {}", k + 1, g.iter().map(|&i| name(i)).collect::<Vec<_>>().join(" "));
                }
            }
        }
        if let serde_json::Value::Object(m) = serde_json::to_value(&s).map_err(|e| e.to_string())? {
            out.extend(m);
        }
    } else if !induction {
        return Err("heads needs --text, or --induction".into());
    }
    if induction {
        let first: Vec<u32> = match ids {
            Some(path) => serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?).map_err(|e| format!("{path}: a JSON array of token ids: {e}"))?,
            None => heads::random_ids(period, seed),
        };
        if first.is_empty() || first.iter().any(|&id| id as usize >= model.config.vocab_size) {
            return Err(format!("the induction ids must be 1..{} token ids below {}", model.config.context_length / 2, model.config.vocab_size));
        }
        let r = heads::induction(&model, &b, &first).map_err(|e| e.to_string())?;
        if !json {
            println!("induction (period {}): {}", r.period, heads::ranked(&r.induction).iter().take(8).map(|(l, h, v)| format!("{l}.{h} {v:.3}")).collect::<Vec<_>>().join(", "));
        }
        out.insert("induction".into(), serde_json::to_value(&r).map_err(|e| e.to_string())?);
    }
    report_fallback(&b);
    if json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(())
}
