//! `attnlab tokenize`: split text into the model's tokens.

use crate::common::{load, read_text};

pub fn run(model_path: &str, text: &str, json: bool) -> Result<(), String> {
    let text = read_text(text)?;
    let (model, _) = load(model_path)?;
    let ids = model.tokenizer.encode(&text);
    let tokens: Vec<String> = ids.iter().map(|&i| model.tokenizer.token_text(i)).collect();
    if json {
        println!("{}", serde_json::json!({ "text": text, "ids": ids, "tokens": tokens }));
    } else {
        for (id, t) in ids.iter().zip(&tokens) {
            println!("{id:>6}  {t:?}");
        }
        println!("{} tokens", ids.len());
    }
    Ok(())
}
