//! Two texts side by side (the "Two texts" tab, `view="compare"`): the same head drawn on two
//! texts that differ a little (minimal pairs), every head ranked by how much its pattern changes
//! between them (mean Jensen–Shannon distance of the rows from the token where the texts part),
//! and the model's next token after each. The articles say heads "behave the same across
//! texts" (Clark et al.); here the reader checks which do not, and sees that in a model that
//! reads left to right nothing before the differing word can change.

use leptos::prelude::*;

use super::heatmap::Heatmap;
use super::state::Page;
use crate::analysis::compare::TextCompare;
use crate::worker::protocol::HeadMap;

/// The pair shown first: a minimal pair (Winograd's trophy).
pub fn default_texts() -> (String, String) {
    ("The trophy didn't fit in the suitcase because it was too big.".into(), "The trophy didn't fit in the suitcase because it was too small.".into())
}

/// The texts a URL or an element asks for (`first`, `second`), else the default pair.
pub fn texts_of(s: &crate::settings::Restore) -> (String, String) {
    let (a, b) = default_texts();
    (s.get("first").map(String::from).unwrap_or(a), s.get("second").map(String::from).unwrap_or(b))
}

fn csv(c: &TextCompare) -> String {
    let mut out = String::from("\"rank\",\"layer\",\"head\",\"mean JS distance\"\n");
    for (r, (l, h, d)) in c.heads.iter().enumerate() {
        out.push_str(&format!("{},{l},{h},{d}\n", r + 1));
    }
    out
}

/// One text's map of the compared head.
#[component]
fn Side(title: String, map: HeadMap, tokens: Vec<String>) -> impl IntoView {
    let query = RwSignal::new(None::<usize>);
    let canvas_ref = NodeRef::new();
    view! {
        <div class="compare-side">
            <h4>{title}</h4>
            <Heatmap map=Signal::derive(move || Some(map.clone())) tokens=Signal::derive(move || tokens.clone()) query=query on_zoom=Callback::new(|_| ()) canvas_ref=canvas_ref/>
        </div>
    }
}

#[component]
pub fn ComparePanel() -> impl IntoView {
    let p = expect_context::<Page>();
    let set = move |i: usize, v: String| p.compare_texts.update(|t| if i == 0 { t.0 = v } else { t.1 = v });
    view! {
        <section class="two-texts" aria-labelledby="compare-title">
            <h3 id="compare-title">"Two texts side by side"</h3>
            <p class="muted">"Write two texts that differ a little. The same head is drawn on both; below, every head is ranked by how much its pattern changes between them — the Jensen–Shannon distance between its rows on the two texts (0: the same, 0.83: nothing in common), averaged from the token where the texts part."</p>
            <div class="compare-controls">
                <label>"first "<input class="compare-a" type="text" size="40" prop:value=move || p.compare_texts.get().0 on:change=move |ev| set(0, event_target_value(&ev))/></label>
                <label>"second "<input class="compare-b" type="text" size="40" prop:value=move || p.compare_texts.get().1 on:change=move |ev| set(1, event_target_value(&ev))/></label>
                <button class="run-compare primary" on:click=move |_| p.request_two_texts() disabled=move || p.model.get().is_none() || p.compare_running.get()>
                    {move || if p.compare_running.get() { "Running both…" } else { "Compare" }}
                </button>
            </div>
            {move || p.compared.get().map(|(c, ma, mb)| {
                let head = (ma.layer, ma.head);
                let this = c.heads.iter().position(|x| (x.0, x.1) == head);
                let finding = if c.from >= c.to {
                    "The two texts read the same tokens up to the shorter one's end: no head can tell them apart yet.".to_string()
                } else {
                    format!("The texts part at token {} (“{}” / “{}”): rows before it are the same in every head, because each token reads only the tokens before it — so a word can change what comes after it, never what came before. Layer {} head {} ranks {} of {} by how much it changes.",
                        c.from, c.a_tokens[c.from].trim(), c.b_tokens[c.from].trim(), head.0, head.1, this.map_or(0, |r| r + 1), c.heads.len())
                };
                let top: Vec<(usize, usize, f32)> = c.heads.iter().take(12).copied().collect();
                let max = top.first().map_or(1.0, |t| t.2.max(1e-6));
                let next = |n: &Vec<(String, f32)>| n.iter().map(|(t, q)| format!("“{}” {:.0}%", t.replace('\n', "⏎"), q * 100.0)).collect::<Vec<_>>().join(", ");
                let (na, nb) = (next(&c.next[0]), next(&c.next[1]));
                let text = csv(&c);
                view! {
                    <p class="compare-finding">{finding}</p>
                    <div class="compare-maps">
                        <Side title=format!("first text · layer {} head {}", head.0, head.1) map=ma tokens=c.a_tokens.clone()/>
                        <Side title=format!("second text · layer {} head {}", head.0, head.1) map=mb tokens=c.b_tokens.clone()/>
                    </div>
                    <table class="compare-rank">
                        <caption>"The heads that change most between the two texts (click one to draw it)"</caption>
                        <thead><tr><th scope="col">"rank"</th><th scope="col">"head"</th><th scope="col">"change (mean JS distance)"</th></tr></thead>
                        <tbody>
                            {top.into_iter().enumerate().map(|(r, (l, h, d))| view! {
                                <tr class:current=(l, h) == head data-head=format!("{l}.{h}")>
                                    <td class="num">{r + 1}</td>
                                    <td><button class="link" on:click=move |_| { p.layer.set(l); p.head.set(h); p.request_two_texts() }>{format!("layer {l} head {h}")}</button></td>
                                    <td><span class="bar" style=format!("width:{:.0}px", 120.0 * d / max)></span>{format!(" {d:.3}")}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    <p class="compare-next"><strong>"Next token after the first: "</strong>{na}<br/><strong>"after the second: "</strong>{nb}</p>
                    <div class="exports"><button on:click=move |_| super::download("attnlab-two-texts.csv", "text/csv", &text)>"CSV"</button></div>
                }
            })}
        </section>
    }
}
