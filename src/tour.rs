//! Guided tours: a small JSON list of steps, each a view with its settings and a caption in
//! Markdown, shown one at a time beside the live figure (`<attn-lab tour="…">`,
//! `embed.html?tour=…`). A tour comes from anyone's URL, so it is read like a saved state:
//! capped in size, checked field by field, and its Markdown turned into a small tree of text,
//! emphasis, code, lists and http(s) links — never into markup. Raw HTML in a caption stays
//! visible text; other links are shown as their words only.
//!
//! ```json
//! { "title": "…",
//!   "steps": [ { "title": "…", "caption": "Markdown", "settings": { "view": "inside", "layer": 13 },
//!                "question": "Markdown (optional)", "answer": "Markdown (optional)" } ] }
//! ```

use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde_json::Value;

use crate::settings::{parse_state, Restore};

/// The largest tour read (bytes of JSON).
pub const TOUR_MAX_BYTES: usize = 256 * 1024;
/// The most steps a tour may have.
pub const MAX_STEPS: usize = 60;
/// The longest caption, question or answer (characters).
pub const MAX_MARKDOWN_CHARS: usize = 8000;

/// Inline Markdown, as text only.
#[derive(Clone, Debug, PartialEq)]
pub enum Inline {
    Text(String),
    Code(String),
    Em(Vec<Inline>),
    Strong(Vec<Inline>),
    /// An http(s) link (any other target is dropped and its words kept as text).
    Link { href: String, children: Vec<Inline> },
    Break,
}

/// Block Markdown, as text only.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Para(Vec<Inline>),
    Heading(Vec<Inline>),
    List { ordered: bool, items: Vec<Vec<Inline>> },
    Code(String),
}

/// One step: what to show and what to say.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub title: String,
    pub caption: Vec<Block>,
    /// The figure's settings (checked like a saved state).
    pub settings: Restore,
    pub question: Option<Vec<Block>>,
    pub answer: Option<Vec<Block>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tour {
    pub title: String,
    pub steps: Vec<Step>,
    /// What was dropped (a setting out of range, an unknown field), by step.
    pub dropped: Vec<String>,
}

/// Whether a link target may be followed: http and https only.
fn safe_href(href: &str) -> bool {
    let h = href.trim().to_ascii_lowercase();
    h.starts_with("https://") || h.starts_with("http://")
}

/// `markdown` as blocks of text (see the module's words on what is kept).
pub fn markdown(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    // Open inline containers: (kind, children); kind 0 = block, 1 = em, 2 = strong, 3 = link.
    let mut stack: Vec<(u8, Option<String>, Vec<Inline>)> = vec![(0, None, vec![])];
    let mut list: Option<(bool, Vec<Vec<Inline>>)> = None;
    let mut code_block: Option<String> = None;
    let push = |stack: &mut Vec<(u8, Option<String>, Vec<Inline>)>, i: Inline| {
        if let Some(top) = stack.last_mut() {
            top.2.push(i);
        }
    };
    // Everything open collapsed into the block's inlines.
    let take = |stack: &mut Vec<(u8, Option<String>, Vec<Inline>)>| -> Vec<Inline> {
        while stack.len() > 1 {
            let (_, _, children) = stack.pop().unwrap_or_default();
            stack[0].2.extend(children);
        }
        std::mem::take(&mut stack[0].2)
    };
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Emphasis) => stack.push((1, None, vec![])),
            Event::Start(Tag::Strong) => stack.push((2, None, vec![])),
            Event::Start(Tag::Link { dest_url, .. }) => stack.push((3, Some(dest_url.to_string()), vec![])),
            Event::End(TagEnd::Emphasis | TagEnd::Strong | TagEnd::Link) if stack.len() > 1 => {
                let (kind, href, children) = stack.pop().unwrap_or_default();
                match (kind, href) {
                    (1, _) => push(&mut stack, Inline::Em(children)),
                    (2, _) => push(&mut stack, Inline::Strong(children)),
                    (_, Some(h)) if safe_href(&h) => push(&mut stack, Inline::Link { href: h.trim().to_string(), children }),
                    _ => children.into_iter().for_each(|c| push(&mut stack, c)),
                }
            }
            Event::Start(Tag::CodeBlock(_)) => code_block = Some(String::new()),
            Event::End(TagEnd::CodeBlock) => blocks.push(Block::Code(code_block.take().unwrap_or_default())),
            Event::Text(t) => match code_block.as_mut() {
                Some(c) => c.push_str(&t),
                None => push(&mut stack, Inline::Text(t.to_string())),
            },
            Event::Code(t) => push(&mut stack, Inline::Code(t.to_string())),
            // Markup in a caption is shown as the characters it is, never interpreted.
            Event::Html(t) | Event::InlineHtml(t) => match code_block.as_mut() {
                Some(c) => c.push_str(&t),
                None => push(&mut stack, Inline::Text(t.to_string())),
            },
            Event::SoftBreak => push(&mut stack, Inline::Text(" ".into())),
            Event::HardBreak => push(&mut stack, Inline::Break),
            Event::Start(Tag::List(first)) => list = Some((first.is_some(), vec![])),
            Event::End(TagEnd::List(_)) => {
                if let Some((ordered, items)) = list.take() {
                    blocks.push(Block::List { ordered, items });
                }
            }
            Event::End(TagEnd::Item) => {
                let inl = take(&mut stack);
                if let Some((_, items)) = list.as_mut() {
                    items.push(inl);
                }
            }
            Event::End(TagEnd::Paragraph) if list.is_some() => push(&mut stack, Inline::Break),
            Event::End(TagEnd::Paragraph) => blocks.push(Block::Para(take(&mut stack))),
            Event::End(TagEnd::Heading(_)) => blocks.push(Block::Heading(take(&mut stack))),
            // Images keep their words (the alt text arrives as text); tables, rules and the
            // rest are not part of a caption.
            _ => {}
        }
    }
    let rest = take(&mut stack);
    if !rest.is_empty() {
        blocks.push(Block::Para(rest));
    }
    blocks
}

/// A short text field of `v` (`what` names it in messages).
fn text(v: &Value, key: &str, max: usize, what: &str) -> Result<Option<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(format!("{what} {key} is longer than {max} characters")),
        Some(_) => Err(format!("{what} {key} is not a text")),
    }
}

/// Reads a tour. A tour that is too large, not JSON, without steps or with a step that has no
/// caption is refused with the reason; a setting that cannot be used is dropped and listed.
pub fn parse_tour(json: &str) -> Result<Tour, String> {
    if json.len() > TOUR_MAX_BYTES {
        return Err(format!("the tour is {} KB; at most {} KB are read", json.len() / 1024, TOUR_MAX_BYTES / 1024));
    }
    let v: Value = serde_json::from_str(json).map_err(|e| format!("the tour is not JSON ({e})"))?;
    if !v.is_object() {
        return Err("the tour is not a JSON object with steps".into());
    }
    let title = text(&v, "title", 200, "the tour's")?.unwrap_or_default();
    let Some(Value::Array(raw)) = v.get("steps") else {
        return Err("the tour has no list of steps".into());
    };
    if raw.is_empty() || raw.len() > MAX_STEPS {
        return Err(format!("the tour has {} steps; 1 to {MAX_STEPS} are shown", raw.len()));
    }
    let mut steps = Vec::with_capacity(raw.len());
    let mut dropped = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let what = format!("step {}'s", i + 1);
        if !s.is_object() {
            return Err(format!("step {} is not an object", i + 1));
        }
        let caption = text(s, "caption", MAX_MARKDOWN_CHARS, &what)?.ok_or_else(|| format!("step {} has no caption", i + 1))?;
        let settings = match s.get("settings") {
            None | Some(Value::Null) => Restore::default(),
            Some(o @ Value::Object(_)) => parse_state(&o.to_string()).map_err(|e| format!("step {}: {e}", i + 1))?,
            Some(_) => return Err(format!("step {}'s settings are not an object", i + 1)),
        };
        dropped.extend(settings.dropped.iter().map(|d| format!("step {}: {d}", i + 1)));
        steps.push(Step {
            title: text(s, "title", 200, &what)?.unwrap_or_default(),
            caption: markdown(&caption),
            settings,
            question: text(s, "question", MAX_MARKDOWN_CHARS, &what)?.map(|q| markdown(&q)),
            answer: text(s, "answer", MAX_MARKDOWN_CHARS, &what)?.map(|a| markdown(&a)),
        });
    }
    Ok(Tour { title, steps, dropped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(blocks: &[Block]) -> String {
        fn inl(i: &[Inline], out: &mut String) {
            for x in i {
                match x {
                    Inline::Text(t) | Inline::Code(t) => out.push_str(t),
                    Inline::Em(c) | Inline::Strong(c) | Inline::Link { children: c, .. } => inl(c, out),
                    Inline::Break => out.push('\n'),
                }
            }
        }
        let mut out = String::new();
        for b in blocks {
            match b {
                Block::Para(i) | Block::Heading(i) => inl(i, &mut out),
                Block::List { items, .. } => items.iter().for_each(|i| inl(i, &mut out)),
                Block::Code(c) => out.push_str(c),
            }
        }
        out
    }

    fn links(blocks: &[Block]) -> Vec<String> {
        fn inl(i: &[Inline], out: &mut Vec<String>) {
            for x in i {
                match x {
                    Inline::Link { href, children } => {
                        out.push(href.clone());
                        inl(children, out)
                    }
                    Inline::Em(c) | Inline::Strong(c) => inl(c, out),
                    _ => {}
                }
            }
        }
        let mut out = vec![];
        for b in blocks {
            match b {
                Block::Para(i) | Block::Heading(i) => inl(i, &mut out),
                Block::List { items, .. } => items.iter().for_each(|i| inl(i, &mut out)),
                Block::Code(_) => {}
            }
        }
        out
    }

    #[test]
    fn markdown_keeps_words_emphasis_lists_and_http_links_only() {
        let b = markdown("Read **the row** of *was* and `q·k`.\n\n- one\n- two [docs](https://example.org/a)\n\n1. first");
        assert_eq!(b[0], Block::Para(vec![Inline::Text("Read ".into()), Inline::Strong(vec![Inline::Text("the row".into())]), Inline::Text(" of ".into()), Inline::Em(vec![Inline::Text("was".into())]), Inline::Text(" and ".into()), Inline::Code("q·k".into()), Inline::Text(".".into())]));
        assert!(matches!(&b[1], Block::List { ordered: false, items } if items.len() == 2));
        assert!(matches!(&b[2], Block::List { ordered: true, items } if items.len() == 1));
        assert_eq!(links(&b), ["https://example.org/a"]);
    }

    #[test]
    fn hostile_markdown_stays_text() {
        let b = markdown("<script>window.x=1</script>\n\nhi <img src=x onerror=\"window.x=2\"> [click](javascript:alert(1)) [data](data:text/html,<b>) [mail](mailto:a@b) ![pic](https://e.org/p.png \"t\")");
        let words = plain(&b);
        assert!(words.contains("<script>window.x=1</script>"), "{words}");
        assert!(words.contains("<img src=x onerror=\"window.x=2\">"), "{words}");
        assert!(words.contains("click") && words.contains("data") && words.contains("mail") && words.contains("pic"), "{words}");
        assert!(links(&b).is_empty(), "{:?}", links(&b));
        // Unbalanced and nested markers do not lose text.
        let p = plain(&markdown("**a *b** c* `d"));
        assert!(["a", "b", "c", "d"].iter().all(|w| p.contains(w)), "{p}");
    }

    #[test]
    fn tours_are_checked_field_by_field() {
        let ok = r#"{"title":"T","steps":[{"title":"One","caption":"See *this*.","settings":{"view":"inside","layer":13,"head":8,"whatif":"javascript:x"},"question":"Why?","answer":"Because."},{"caption":"Two"}]}"#;
        let t = parse_tour(ok).unwrap();
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].settings.set.iter().map(|s| s.0).collect::<Vec<_>>(), ["view", "layer", "head"]);
        assert_eq!(t.dropped.len(), 1);
        assert!(t.dropped[0].starts_with("step 1: whatif=javascript:x is not one of"), "{:?}", t.dropped);
        assert!(t.steps[1].question.is_none());
        for (bad, why) in [
            ("[]", "not a JSON object"),
            ("{\"steps\": ", "not JSON"),
            ("{\"title\":\"x\"}", "no list of steps"),
            ("{\"steps\":[]}", "0 steps"),
            ("{\"steps\":[{\"title\":\"no caption\"}]}", "step 1 has no caption"),
            ("{\"steps\":[{\"caption\":5}]}", "caption is not a text"),
            ("{\"steps\":[{\"caption\":\"x\",\"settings\":[1]}]}", "settings are not an object"),
            ("{\"steps\":[7]}", "step 1 is not an object"),
        ] {
            let e = parse_tour(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let many = format!("{{\"steps\":[{}]}}", vec!["{\"caption\":\"x\"}"; MAX_STEPS + 1].join(","));
        assert!(parse_tour(&many).unwrap_err().contains("61 steps"));
        let huge = format!("{{\"steps\":[{{\"caption\":\"{}\"}}]}}", "a".repeat(TOUR_MAX_BYTES));
        assert!(parse_tour(&huge).unwrap_err().contains("at most 256 KB"));
        let long = format!("{{\"steps\":[{{\"caption\":\"{}\"}}]}}", "a".repeat(MAX_MARKDOWN_CHARS + 1));
        assert!(parse_tour(&long).unwrap_err().contains("longer than 8000"));
    }
}
