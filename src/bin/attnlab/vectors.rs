//! `attnlab vectors`: a word through the layers of two texts (cosine similarity of their
//! residual vectors, nearest tokens through the lens); `attnlab qk`: one head's queries and
//! keys as points on two axes.

use attnlab::analysis::vectors::{find_word, qk_points, word_vectors};
use attnlab::backends::{Backend, ForwardOptions, LogitsFor};

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

/// `word` (or the positions `at`) in `a` and in `b`, compared layer by layer.
pub fn run_vectors(model_path: &str, a: &str, b: &str, word: &str, at: (Option<usize>, Option<usize>), choice: BackendChoice, json: bool) -> Result<(), String> {
    let (a, b) = (read_text(a)?, read_text(b)?);
    let (model, _) = load(model_path)?;
    let tok = &model.tokenizer;
    let mut picks = vec![];
    for (text, at, which) in [(&a, at.0, "--text"), (&b, at.1, "--other")] {
        let ids = tok.encode(text);
        let tokens: Vec<String> = ids.iter().map(|&id| tok.token_text(id)).collect();
        let pos = match at {
            Some(p) => p,
            None => find_word(&tokens, word).ok_or_else(|| format!("{word:?} is not a token of {which} ({tokens:?}): use --at-a / --at-b"))?,
        };
        picks.push((ids, pos));
    }
    let eng = backend(choice)?;
    let v = word_vectors(&eng, &model, (&picks[0].0, picks[0].1), (&picks[1].0, picks[1].1)).map_err(|e| e.to_string())?;
    report_fallback(&eng);
    if json {
        println!("{}", serde_json::to_string(&v).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("{:?} (token {} of the first text) against {:?} (token {} of the second)", v.a.tokens[v.a.at], v.a.at, v.b.tokens[v.b.at], v.b.at);
    println!("| layer | cosine | nearest tokens (first) | nearest tokens (second) |");
    println!("|---|---|---|---|");
    let near = |n: &Vec<(u32, String, f32)>| n.iter().take(3).map(|(_, t, p)| format!("{t:?} {p:.2}")).collect::<Vec<_>>().join(", ");
    for (l, c) in v.cosine.iter().enumerate() {
        let (name, na, nb) = if l == 0 { ("embedding".to_string(), String::new(), String::new()) } else { ((l - 1).to_string(), near(&v.a.nearest[l - 1]), near(&v.b.nearest[l - 1])) };
        println!("| {name} | {c:.3} | {na} | {nb} |");
    }
    Ok(())
}

/// Head `layer.head`'s queries and keys of `text` projected onto their two principal axes.
pub fn run_qk(model_path: &str, text: &str, layer: usize, head: usize, choice: BackendChoice, json: bool) -> Result<(), String> {
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let ids = model.tokenizer.encode(&text);
    let eng = backend(choice)?;
    let out = eng.forward(&model, &ids, &ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() }).map_err(|e| e.to_string())?;
    report_fallback(&eng);
    let tokens: Vec<String> = ids.iter().map(|&id| model.tokenizer.token_text(id)).collect();
    let t = out.trace.ok_or("the pass kept no attention")?;
    let p = qk_points(&t, &tokens, layer, head).map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&p).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("head {layer}.{head}: the two axes hold {:.0}% and {:.0}% of the spread of its {} queries and keys", p.explained[0] * 100.0, p.explained[1] * 100.0, 2 * tokens.len());
    println!("| token | query | key | reads most |");
    println!("|---|---|---|---|");
    for (i, t) in tokens.iter().enumerate() {
        let top = p.links.iter().find(|l| l.0 == i).map(|l| format!("{:?} {:.2}", tokens[l.1], l.2)).unwrap_or_default();
        println!("| {t:?} | ({:.2}, {:.2}) | ({:.2}, {:.2}) | {top} |", p.queries[i][0], p.queries[i][1], p.keys[i][0], p.keys[i][1]);
    }
    Ok(())
}
