//! "Write on": what the model writes after a text under several variants side by side — the
//! caches of "Why sinks matter", the plain model against a what-if of "…and through the
//! model". Greedy (the likeliest token every step), so the only difference between two rows is
//! the variant; the tokens from the first one where a row departs from the first row are
//! marked. Each token tells its probability and the alternatives on hover or focus.

use leptos::prelude::*;

use super::state::Page;
use crate::worker::protocol::{Request, WrittenText};

/// Tokens written under each variant.
pub const WRITE_TOKENS: usize = 24;

/// The rows written so far for the panel `owner`, of `total` asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub owner: &'static str,
    pub rows: Vec<WrittenText>,
    pub total: usize,
    pub cancelled: bool,
}

/// The rows as JSON (what the worker wrote: ids, texts, probabilities, alternatives).
fn json(w: &Written) -> String {
    serde_json::to_string_pretty(&w.rows).unwrap_or_default()
}

/// The rows of the panel `owner` (once it asked), with progress and Stop while they come.
/// `label` names a row in the panel's words.
#[component]
pub fn WrittenRows(owner: &'static str, label: fn(&WrittenText) -> String) -> impl IntoView {
    let p = expect_context::<Page>();
    let mine = move || p.written.get().filter(|w| w.owner == owner);
    view! {
        {move || mine().map(|w| {
            let first = w.rows.first().cloned();
            let rows = w.rows.clone();
            let file = format!("attnlab-written-{owner}.json");
            let text = json(&w);
            view! {
                <figure class="write-on" data-owner=owner>
                    {move || p.writing.get().map(|(d, t)| view! {
                        <p class="write-progress"><progress max=t value=d></progress>
                            <span class="muted">{format!(" token {} of {} ", d as usize, t as usize)}</span>
                            <button class="stop" on:click=move |_| { p.send(Request::Cancel); }>"Stop"</button>
                        </p>
                    })}
                    <table class="written">
                        <thead><tr><th scope="col">"the model"</th><th scope="col">{format!("writes on ({WRITE_TOKENS} tokens, the likeliest each time)")}</th><th scope="col" title="keys the last token's query reads in each layer">"keys read"</th></tr></thead>
                        <tbody>
                            {rows.iter().map(|row| {
                                let from = first.as_ref().and_then(|f| row.departs_from(f));
                                let note = match (from, first.as_ref().map(|f| f.name == row.name)) {
                                    (_, Some(true)) => "the row the others are compared with".to_string(),
                                    (None, _) => "writes the same as the first row".to_string(),
                                    (Some(t), _) => format!("departs from the first row at token {}", t + 1),
                                };
                                view! {
                                    <tr data-variant=row.name.clone()>
                                        <th scope="row">{label(row)}<br/><span class="muted small">{note}</span></th>
                                        <td class="continuation">
                                            {row.tokens.iter().enumerate().map(|(t, tok)| {
                                                let alts = tok.top.iter().map(|(_, s, q)| format!("{s:?} {:.1}%", q * 100.0)).collect::<Vec<_>>().join(", ");
                                                let title = format!("token {}: {:?}, probability {:.1}%; the likeliest were {alts}", t + 1, tok.text, tok.prob * 100.0);
                                                view! { <span class="wtok" class:departed=from.is_some_and(|f| t >= f) data-id=tok.id tabindex="0" title=title.clone() aria-label=title>{tok.text.replace('\n', "⏎")}</span> }
                                            }).collect_view()}
                                        </td>
                                        <td class="num">{row.keys_read.to_string()}{row.recompute.then_some(" (no cache)")}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                    <figcaption class="muted">
                        {if w.cancelled { format!("Stopped after {} of {} rows. ", w.rows.len(), w.total) } else { String::new() }}
                        "Marked: the tokens from the first one where a row departs from the first row. Hover or focus a token for its probability and the alternatives. Keys read: how many cached tokens the last step's query reads in each layer — a cache that keeps only those could drop the rest."
                    </figcaption>
                    <div class="exports"><button on:click=move |_| super::download(&file, "application/json", &text)>"JSON"</button></div>
                </figure>
            }
        })}
    }
}
