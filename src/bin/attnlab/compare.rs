//! `attnlab compare`: two texts side by side — which heads' patterns change most between them.

use attnlab::analysis::compare::{compare_texts, TextCompare};

use crate::common::{backend, load, read_text, report_fallback};
use crate::BackendChoice;

pub fn run(model_path: &str, a: &str, b: &str, top: usize, choice: BackendChoice, json: bool) -> Result<(), String> {
    let (a, b) = (read_text(a)?, read_text(b)?);
    let (model, _) = load(model_path)?;
    let (ia, ib) = (model.tokenizer.encode(&a), model.tokenizer.encode(&b));
    let eng = backend(choice)?;
    let c: TextCompare = compare_texts(&eng, &model, &ia, &ib).map_err(|e| e.to_string())?;
    report_fallback(&eng);
    if json {
        println!("{}", serde_json::to_string(&c).map_err(|e| e.to_string())?);
        return Ok(());
    }
    if c.from >= c.to {
        println!("the texts read the same tokens up to the shorter one's end: no head can differ");
    } else {
        println!("the texts differ from token {} ({:?} / {:?}); rows {}–{} compared", c.from, c.a_tokens[c.from], c.b_tokens[c.from], c.from, c.to - 1);
    }
    println!("| head | mean JS distance of its rows |");
    println!("|---|---|");
    for (l, h, d) in c.heads.iter().take(top) {
        println!("| {l}.{h} | {d:.3} |");
    }
    let next = |n: &Vec<(String, f32)>| n.iter().map(|(t, p)| format!("{t:?} {p:.2}")).collect::<Vec<_>>().join(", ");
    println!("next token after the first: {}\nnext token after the second: {}", next(&c.next[0]), next(&c.next[1]));
    Ok(())
}
