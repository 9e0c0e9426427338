//! `attnlab inspect`: run the model and report attention, sink mass and next-token logits.

use attnlab::analysis::report::{inspect, HeadSelection};
use attnlab::backends::Backend;

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

pub fn run(model_path: &str, text: &str, choice: BackendChoice, heads: &str, json: bool, truncate: bool) -> Result<(), String> {
    let mut text = read_text(text)?;
    let heads = HeadSelection::parse(heads).map_err(|e| e.to_string())?;
    let (model, _) = load(model_path)?;
    let max = model.config.context_length;
    let toks = model.tokenizer.encode_with_spans(&text);
    if toks.len() > max {
        if !truncate {
            return Err(format!("the text has {} tokens, more than this model's context of {max} tokens; nothing was run (--truncate keeps the first {max})", toks.len()));
        }
        let mut cut = toks[max - 1].end.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        eprintln!("attnlab: the text has {} tokens; kept the first {max} (its first {cut} bytes)", toks.len());
        text.truncate(cut);
    }
    let b = backend(choice)?;
    let report = inspect(&model, &b, &text, &heads).map_err(|e| e.to_string())?;
    report_fallback(&b);
    if json {
        println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("{} — {} tokens on {}", report.model, report.ids.len(), b.describe());
    println!("tokens: {}", report.tokens.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(" "));
    println!("\nnext-token candidates:");
    for (id, logit) in report.last_logits_top.iter().take(8) {
        let p = (logit - report.last_logsumexp).exp();
        println!("  {:>6.2}%  {:?}", p * 100.0, model.tokenizer.token_text(*id));
    }
    let mut sinks: Vec<(usize, usize, f32)> = report
        .sink_mass_key0
        .iter()
        .enumerate()
        .flat_map(|(l, hs)| hs.iter().enumerate().filter_map(move |(h, m)| m.map(|m| (l, h, m))))
        .collect();
    sinks.sort_by(|a, b| b.2.total_cmp(&a.2));
    if !sinks.is_empty() {
        let mean = sinks.iter().map(|s| s.2).sum::<f32>() / sinks.len() as f32;
        println!("\nattention sink (mass on the first token, mean over queries 1..n-1): mean {mean:.3}; strongest heads:");
        for (l, h, m) in sinks.iter().take(8) {
            println!("  layer {l:>2} head {h}: {m:.3}");
        }
    }
    let t = &report.timings_ms;
    println!("\ntimings: tokenize {:.1} ms, forward {:.1} ms, analysis {:.1} ms", t.tokenize, t.forward, t.analysis);
    Ok(())
}
