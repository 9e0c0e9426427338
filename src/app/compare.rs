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

/// The shown head's rows where the texts can differ (from the first differing token to the
/// shorter end), cell by cell: weight on the first text minus weight on the second, over the
/// keys both rows read. Only for maps drawn exactly (one token per cell).
#[component]
fn Difference(c: TextCompare, a: HeadMap, b: HeadMap) -> impl IntoView {
    if c.from >= c.to || a.block_q != 1 || a.block_k != 1 || b.block_q != 1 || b.block_k != 1 {
        return view! { <p class="muted">"No cell-by-cell difference here: the texts read the same tokens, or the maps are pooled (long texts)."</p> }.into_any();
    }
    let at = |m: &HeadMap, i: usize, j: usize| m.values.get((i - m.rows.0) * m.side_k + (j - m.cols.0)).copied().unwrap_or(0.0);
    let (rows, keys) = (c.from..c.to, c.to);
    let cells: Vec<(usize, usize, f32, f32)> = rows.clone().flat_map(|i| (0..=i.min(keys - 1)).map(move |j| (i, j))).map(|(i, j)| (i, j, at(&a, i, j), at(&b, i, j))).collect();
    let max = cells.iter().map(|c| (c.2 - c.3).abs()).fold(1e-6f32, f32::max);
    let cell = (560.0 / keys as f64).clamp(6.0, 22.0);
    let (left, top) = (90.0f64, 70.0f64);
    let (w, h) = (left + cell * keys as f64 + 10.0, top + cell * rows.len() as f64 + 40.0);
    let colour = move |d: f32| {
        let t = (d.abs() / max).clamp(0.0, 1.0);
        let (r, g, bl) = if d >= 0.0 { (59.0, 91.0, 219.0) } else { (232.0, 89.0, 12.0) };
        format!("rgba({r},{g},{bl},{:.3})", 0.08 + 0.92 * t)
    };
    let key_label = |j: usize| if c.a_tokens.get(j) == c.b_tokens.get(j) { c.a_tokens[j].trim().to_string() } else { format!("{}/{}", c.a_tokens[j].trim(), c.b_tokens[j].trim()) };
    view! {
        <figure class="compare-diff">
            <svg viewBox=format!("0 0 {w:.0} {h:.0}") role="img" aria-label=format!("difference of layer {} head {} between the texts, rows {} to {}", a.layer, a.head, c.from, c.to - 1)>
                {(0..keys).map(|j| view! { <text x=left + cell * (j as f64 + 0.5) y=top - 6.0 font-size="10" transform=format!("rotate(-60 {:.1} {:.1})", left + cell * (j as f64 + 0.5), top - 6.0)>{key_label(j)}</text> }).collect_view()}
                {rows.clone().enumerate().map(|(r, i)| view! { <text x=left - 6.0 y=top + cell * (r as f64 + 0.7) text-anchor="end" font-size="10">{key_label(i)}</text> }).collect_view()}
                {cells.iter().map(|&(i, j, pa, pb)| {
                    let d = pa - pb;
                    let title = format!("row {:?} ({i}) → key {:?} ({j}): {pa:.3} on the first text, {pb:.3} on the second ({d:+.3})", key_label(i), key_label(j));
                    view! { <rect x=left + cell * j as f64 y=top + cell * (i - c.from) as f64 width=cell - 1.0 height=cell - 1.0 fill=colour(d) class="diff-cell" data-d=format!("{d:.4}")><title>{title}</title></rect> }
                }).collect_view()}
                <text x=left y=h - 14.0 font-size="11">{format!("blue: more on the first text · orange: more on the second · the strongest cell {max:.2}")}</text>
            </svg>
            <figcaption class="muted">{format!("Layer {} · head {}: each cell is the weight a row puts on a key in the first text minus in the second, for the rows from token {} on (before it the two rows are the same). Hover a cell for both values.", a.layer, a.head, c.from)}</figcaption>
        </figure>
    }.into_any()
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
                let json = serde_json::to_string_pretty(&c).unwrap_or_default();
                let (dc, da, db) = (c.clone(), ma.clone(), mb.clone());
                view! {
                    <p class="compare-finding">{finding}</p>
                    <div class="compare-maps">
                        <Side title=format!("first text · layer {} head {}", head.0, head.1) map=ma tokens=c.a_tokens.clone()/>
                        <Side title=format!("second text · layer {} head {}", head.0, head.1) map=mb tokens=c.b_tokens.clone()/>
                    </div>
                    <Difference c=dc a=da b=db/>
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
                    <div class="exports">
                        <button on:click=move |_| super::download("attnlab-two-texts.csv", "text/csv", &text)>"CSV"</button>
                        <button on:click=move |_| super::download("attnlab-two-texts.json", "application/json", &json)>"JSON"</button>
                    </div>
                }
            })}
        </section>
    }
}
