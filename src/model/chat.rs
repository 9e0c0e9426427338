//! Chat: a user's message written the way an instruct model was trained to read it, by the
//! GGUF file's own `tokenizer.chat_template` (a Jinja template, rendered with `minijinja`).
//!
//! As Hugging Face's `apply_chat_template` renders it: `trim_blocks` and `lstrip_blocks` on,
//! no auto-escaping, `break`/`continue` allowed, the variables `messages` (one
//! `{role: "user", content}` here), `add_generation_prompt = true`, `bos_token`, `eos_token`,
//! and the function `raise_exception(message)`, which templates call to refuse a conversation
//! (it becomes [`ChatError::Raised`]).
//!
//! A file's template is untrusted input: it is read only up to [`MAX_TEMPLATE_BYTES`], runs on
//! [`FUEL`] instructions at most (a loop that never ends runs out, it does not hang), and its
//! output may be at most [`MAX_OUTPUT_EXTRA_BYTES`] longer than twice the user's text.
//! Strings a template builds in variables without writing them are not bounded by this.

use std::sync::{Arc, Mutex};

use minijinja::{context, syntax::SyntaxConfig, AutoEscape, Environment, ErrorKind, Value};

use super::Model;

/// Longest template rendered (real ones are a few KiB; tool-calling ones up to ~20 KiB).
pub const MAX_TEMPLATE_BYTES: usize = 256 << 10;
/// Most template instructions one render may run (a one-message chat takes a few hundred).
pub const FUEL: u64 = 1_000_000;
/// A rendered prompt may be this much longer than twice the user's text.
pub const MAX_OUTPUT_EXTRA_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("this is a base model file without a chat template (its metadata has no tokenizer.chat_template), so Chat is not offered: give it text to continue instead")]
    NoTemplate,
    #[error("the file's chat template is {0} bytes, more than the {MAX_TEMPLATE_BYTES} attnlab renders")]
    TemplateTooLarge(usize),
    #[error("the file's chat template does not parse: {0}")]
    Parse(String),
    #[error("the file's chat template refused the conversation (raise_exception): {0}")]
    Raised(String),
    #[error("the file's chat template ran past {FUEL} steps without finishing, so it was stopped")]
    OutOfFuel,
    #[error("the file's chat template wrote more than {0} bytes, so it was stopped")]
    OutputTooLarge(usize),
    #[error("the file's chat template failed: {0}")]
    Render(String),
}

/// Whether the model's file carries a chat template (Chat is offered only then).
pub fn has_chat(model: &Model) -> bool {
    model.tokenizer.chat_template.is_some()
}

/// `user_text` as the one user message of a conversation, ending with the assistant's turn
/// opened (the model writes the reply next), in the file's own template.
pub fn chat_prompt(model: &Model, user_text: &str) -> Result<String, ChatError> {
    let template = model.tokenizer.chat_template.as_deref().ok_or(ChatError::NoTemplate)?;
    let special = |id: Option<u32>| id.map(|i| model.tokenizer.token_text(i)).unwrap_or_default();
    render(template, &special(model.tokenizer.bos_id), &special(model.tokenizer.eos_id), user_text)
}

/// The token ids of a prompt from [`chat_prompt`]: its special markers (`<|im_start|>`) as
/// single ids, and one BOS when both the template and the tokenizer put one first.
pub fn encode_prompt(model: &Model, prompt: &str) -> Vec<u32> {
    drop_double_bos(model.tokenizer.encode(prompt), model.tokenizer.bos_id)
}

/// A template that writes `bos_token` itself, encoded by a tokenizer that adds BOS, starts
/// with two: the model was trained on one (Hugging Face encodes chat text with no added BOS).
pub fn drop_double_bos(mut ids: Vec<u32>, bos: Option<u32>) -> Vec<u32> {
    if let Some(b) = bos {
        if ids.len() >= 2 && ids[0] == b && ids[1] == b {
            ids.remove(0);
        }
    }
    ids
}

/// Renders `template` for one user message `user_text` with the generation prompt on.
pub fn render(template: &str, bos_token: &str, eos_token: &str, user_text: &str) -> Result<String, ChatError> {
    if template.len() > MAX_TEMPLATE_BYTES {
        return Err(ChatError::TemplateTooLarge(template.len()));
    }
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(|e| ChatError::Parse(e.to_string()))?;
    env.set_syntax(syntax);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    let raised: Arc<Mutex<Option<String>>> = Arc::default();
    let cell = raised.clone();
    env.add_function("raise_exception", move |message: String| -> Result<Value, minijinja::Error> {
        if let Ok(mut c) = cell.lock() {
            c.get_or_insert_with(|| message.clone());
        }
        Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
    });
    let tmpl = env.template_from_str(template).map_err(|e| ChatError::Parse(e.to_string()))?;
    let ctx = context! {
        messages => vec![context! { role => "user", content => user_text }],
        add_generation_prompt => true,
        bos_token => bos_token,
        eos_token => eos_token,
    };
    let limit = user_text.len().saturating_mul(2).saturating_add(MAX_OUTPUT_EXTRA_BYTES);
    let mut out = Capped { buf: Vec::new(), limit, over: false };
    // The captured state borrows the environment: keep only whether it worked.
    let result = tmpl.render_captured_to(ctx, &mut out).map(|_| ());
    match result {
        Ok(()) => String::from_utf8(out.buf).map_err(|e| ChatError::Render(e.to_string())),
        Err(e) => {
            if let Some(message) = raised.lock().ok().and_then(|mut c| c.take()) {
                Err(ChatError::Raised(message))
            } else if out.over {
                Err(ChatError::OutputTooLarge(limit))
            } else if e.kind() == ErrorKind::OutOfFuel {
                Err(ChatError::OutOfFuel)
            } else {
                Err(ChatError::Render(e.to_string()))
            }
        }
    }
}

/// Collects output up to `limit` bytes; past it, writing fails (and the render stops).
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("chat template output too large"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ChatML as SmolLM2 and Qwen write it, with a default system message, block tags on lines
    /// of their own (`trim_blocks` and `lstrip_blocks` remove those lines whole, as in
    /// Hugging Face's renderer) and the turn joined with `+`.
    const CHATML: &str = "{% for message in messages %}
    {% if loop.first and messages[0]['role'] != 'system' %}
<|im_start|>system
Be brief.<|im_end|>
    {% endif %}
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' }}
{% endfor %}
{% if add_generation_prompt %}
<|im_start|>assistant
{% endif %}";

    #[test]
    fn chatml_renders_the_system_message_the_turn_and_the_generation_prompt() {
        let got = render(CHATML, "<s>", "</s>", "Hi there?").unwrap();
        assert_eq!(got, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there?<|im_end|>\n<|im_start|>assistant\n");
        // `loop.first` and attribute access (`m.role`) as in Jinja.
        let t = "{% for m in messages %}{% if loop.first and m.role != 'system' %}S{% endif %}{{ m.role }}{% endfor %}";
        assert_eq!(render(t, "", "", "x").unwrap(), "Suser");
    }

    #[test]
    fn bos_and_eos_tokens_reach_the_template() {
        let got = render("{{ bos_token }}[{{ messages[0].content }}]{{ eos_token }}", "<bos>", "<eos>", "x").unwrap();
        assert_eq!(got, "<bos>[x]<eos>");
    }

    #[test]
    fn user_text_is_not_html_escaped_nor_read_as_template() {
        let got = render("{{ messages[0]['content'] }}", "", "", "<b>&'\"{{ 1 + 1 }}").unwrap();
        assert_eq!(got, "<b>&'\"{{ 1 + 1 }}");
    }

    #[test]
    fn raise_exception_is_an_error_with_its_message() {
        let t = "{% if messages[0]['role'] == 'user' %}{{ raise_exception('Only system messages, please') }}{% endif %}ok";
        assert_eq!(render(t, "", "", "hi"), Err(ChatError::Raised("Only system messages, please".into())));
        let msg = render(t, "", "", "hi").unwrap_err().to_string();
        assert!(msg.contains("Only system messages, please"), "{msg}");
    }

    #[test]
    fn a_broken_template_is_a_parse_error_with_minijinjas_message() {
        let e = render("{% for m in messages %}{{ m.content }}", "", "", "hi").unwrap_err();
        let ChatError::Parse(msg) = &e else { panic!("{e:?}") };
        assert!(msg.contains("syntax error") && msg.contains("end of input"), "{msg}");
        assert!(matches!(render("{{ 'a' + }}", "", "", "hi"), Err(ChatError::Parse(_))));
    }

    #[test]
    fn a_template_that_would_run_for_ever_runs_out_of_fuel() {
        let t = "{% for i in range(100000) %}{% for j in range(100000) %}{% set x = i + j %}{% endfor %}{% endfor %}";
        let clock = std::time::Instant::now();
        assert_eq!(render(t, "", "", "hi"), Err(ChatError::OutOfFuel));
        assert!(clock.elapsed().as_secs() < 20, "{:?}", clock.elapsed());
    }

    #[test]
    fn a_template_that_writes_too_much_is_stopped() {
        let t = "{% for i in range(100) %}{{ 'x' * 100000 }}{% endfor %}";
        assert!(matches!(render(t, "", "", "hi"), Err(ChatError::OutputTooLarge(_))));
        // Long user text is not "too much".
        let long = "y".repeat(3 << 20);
        assert_eq!(render("{{ messages[0].content }}", "", "", &long).unwrap().len(), long.len());
    }

    #[test]
    fn a_template_over_the_size_limit_is_refused_unread() {
        let t = "a".repeat(MAX_TEMPLATE_BYTES + 1);
        assert_eq!(render(&t, "", "", "hi"), Err(ChatError::TemplateTooLarge(MAX_TEMPLATE_BYTES + 1)));
    }

    #[test]
    fn render_errors_carry_minijinjas_message() {
        let e = render("{{ messages[0].content | no_such_filter }}", "", "", "hi").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("no_such_filter"), "{msg}");
    }

    #[test]
    fn the_no_template_message_says_base_model_and_no_chat() {
        let m = ChatError::NoTemplate.to_string();
        assert!(m.contains("base model") && m.contains("without a chat template") && m.contains("Chat is not offered"), "{m}");
    }

    #[test]
    fn one_bos_when_template_and_tokenizer_both_add_it() {
        assert_eq!(drop_double_bos(vec![2, 2, 5], Some(2)), vec![2, 5]);
        assert_eq!(drop_double_bos(vec![2, 5], Some(2)), vec![2, 5]);
        assert_eq!(drop_double_bos(vec![2, 2, 5], None), vec![2, 2, 5]);
        assert_eq!(drop_double_bos(vec![], Some(2)), Vec::<u32>::new());
    }
}
