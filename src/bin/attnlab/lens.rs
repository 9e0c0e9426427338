//! `attnlab lens`: what the model would predict after each layer (the logit lens).

use attnlab::analysis::lens::{lens_positions, logit_lens};

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

pub fn run(model_path: &str, text: &str, max_positions: usize, choice: BackendChoice, json: bool) -> Result<(), String> {
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let ids = model.tokenizer.encode(&text);
    if ids.is_empty() {
        return Err("the text is empty: there is nothing to read".into());
    }
    if max_positions == 0 {
        return Err("--positions must be at least 1".into());
    }
    let b = backend(choice)?;
    let lens = logit_lens(&b, &model, &ids, &lens_positions(ids.len(), max_positions)).map_err(|e| e.to_string())?;
    report_fallback(&b);
    if json {
        println!("{}", serde_json::to_string(&lens).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let tok = &model.tokenizer;
    let last = lens.layers.len() - 1;
    println!("| position | token | final prediction | first top-1 at layer | stays top-1 from layer |");
    println!("|---|---|---|---|---|");
    for (i, &pos) in lens.positions.iter().enumerate() {
        let first = lens.first_top1[i].map_or("-".to_string(), |l| l.to_string());
        println!("| {pos} | {:?} | {:?} ({:.2}) | {first} | {} |", lens.tokens[pos], tok.token_text(lens.final_argmax[i]), lens.layers[last].top_probs[i][0], lens.settled_at[i]);
    }
    let i = lens.positions.len() - 1;
    println!("\nafter {:?}, layer by layer (top-1, its probability, p of the final answer):", lens.tokens[lens.positions[i]]);
    for (l, layer) in lens.layers.iter().enumerate() {
        println!("  {l:>2}: {:?} {:.3}  {:.3}", tok.token_text(layer.top_ids[i][0]), layer.top_probs[i][0], layer.p_final_top1[i]);
    }
    Ok(())
}
