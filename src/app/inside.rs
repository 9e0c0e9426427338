//! "Inside this head": the selected query's row computed step by step on the real model —
//! q·k for each key, ÷√d, the causal mask, softmax, the values weighted into the head's
//! output — with exact numbers, and the controls that change how every map is shown (colour
//! scale, sink hidden) and what-ifs that break the computation on purpose (no √d, no mask,
//! no positions) for the whole map.

use leptos::prelude::*;

use super::heatmap::ColourScale;
use super::state::Page;
use crate::analysis::explain::{entropy, Explain, WhatIf};

/// Rows shown at most; longer rows show the keys with the most attention.
const MAX_KEYS: usize = 40;

/// Colour scale, sink hidden, what-if: each change redraws maps and re-asks the worker.
#[component]
pub fn LookControls() -> impl IntoView {
    let p = expect_context::<Page>();
    let refresh = move || {
        p.request_head(None);
        p.send(crate::worker::protocol::Request::Thumbs { side: 24, slot: p.slot() });
    };
    view! {
        <div class="look-controls">
            <label>"Colour scale "
                <select on:change=move |ev| p.look.colour.set(ColourScale::parse(&event_target_value(&ev)))>
                    {[ColourScale::Linear, ColourScale::Sqrt, ColourScale::Log].into_iter().map(|c| view! {
                        <option value=c.as_str() selected=move || p.look.colour.get() == c>{match c { ColourScale::Linear => "linear", ColourScale::Sqrt => "√ (square root)", ColourScale::Log => "log" }}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Colours "
                <select class="palette" on:change=move |ev| p.look.palette.set(super::heatmap::Palette::parse(&event_target_value(&ev)).unwrap_or_default())>
                    <option value="blues" selected=move || p.look.palette.get() == super::heatmap::Palette::Blues>"blue (one hue)"</option>
                    <option value="viridis" selected=move || p.look.palette.get() == super::heatmap::Palette::Viridis>"viridis (colour-blind safe, more contrast)"</option>
                </select>
            </label>
            <label title="Renormalise every row without key 0, so the pattern under the attention sink shows">
                <input type="checkbox" prop:checked=move || p.look.hide_sink.get() on:change=move |ev| { p.look.hide_sink.set(event_target_checked(&ev)); p.request_head(None) }/>
                " hide the sink"
            </label>
            <span class="what-ifs" role="group" aria-label="what if">"What if: "
                {[(WhatIf::None, "as computed"), (WhatIf::Unscaled, "skip ÷√d"), (WhatIf::Unmasked, "remove the causal mask"), (WhatIf::NoRope, "ignore positions")].into_iter().map(|(w, label)| view! {
                    <label><input type="radio" name="attnlab-whatif" prop:checked=move || p.look.what_if.get() == w on:change=move |_| { p.look.what_if.set(w); refresh() }/>{format!(" {label} ")}</label>
                }).collect_view()}
            </span>
        </div>
    }
}

fn what_if_row(e: &Explain, w: WhatIf) -> Option<&Vec<f32>> {
    match w {
        WhatIf::None => None,
        WhatIf::Unscaled => Some(&e.probs_unscaled),
        WhatIf::Unmasked => Some(&e.probs_unmasked),
        WhatIf::NoRope => Some(&e.probs_no_rope),
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

fn label(t: &str) -> String {
    let t = t.replace('\n', "⏎").replace('\t', "⇥");
    if t.chars().count() > 14 {
        format!("{}…", t.chars().take(13).collect::<String>())
    } else {
        t
    }
}

/// A horizontal bar in a table cell: `frac` of the width, signed bars grow from the middle.
fn bar(frac: f32, signed: bool, class: &'static str) -> impl IntoView {
    let style = if signed {
        let w = (frac.abs().min(1.0) * 50.0) as f64;
        if frac >= 0.0 {
            format!("left:50%;width:{w:.1}%")
        } else {
            format!("left:{:.1}%;width:{w:.1}%", 50.0 - w)
        }
    } else {
        format!("left:0;width:{:.1}%", frac.clamp(0.0, 1.0) * 100.0)
    };
    view! { <span class="bar-cell"><span class=format!("bar {class}") style=style></span></span> }
}

/// The steps of the selected query's row, with the active what-if beside it.
#[component]
pub fn InsideHead() -> impl IntoView {
    let p = expect_context::<Page>();
    view! {
        <section class="inside" aria-labelledby="inside-title">
            <h3 id="inside-title">"Inside this head"</h3>
            <LookControls/>
            {move || p.explain.get().map(|e| {
                let w = p.look.what_if.get();
                let alt = what_if_row(&e, w).cloned();
                let n = e.query + 1;
                // Which keys to show: all of a short row, else the most-attended ones, in order.
                let mut keys: Vec<usize> = (0..n).collect();
                if n > MAX_KEYS {
                    keys.sort_by(|&a, &b| e.probs[b].total_cmp(&e.probs[a]));
                    keys.truncate(MAX_KEYS);
                    keys.sort();
                }
                let dmax = e.dot.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
                let cmax = e.contrib_norms.iter().fold(1e-6f32, |m, v| m.max(*v));
                let sqrt_d = (e.head_dim as f32).sqrt();
                let tok = |j: usize| e.tokens.get(j).cloned().unwrap_or_default();
                let summary = alt.as_ref().map(|a| {
                    let (t0, t1) = (argmax(&e.probs), argmax(a));
                    format!(
                        "{}: entropy {:.2} → {:.2} nats; top key ‘{}’ ({:.1}%) → ‘{}’ ({:.1}%){}",
                        match w { WhatIf::Unscaled => "Without ÷√d", WhatIf::Unmasked => "Without the causal mask", _ => "Without positions" },
                        e.entropy, entropy(a), label(&tok(t0)), e.probs[t0] * 100.0, label(&tok(t1)), a[t1] * 100.0,
                        if w == WhatIf::Unmasked { format!("; {:.1}% of the attention now goes to future tokens", a[n..].iter().fold(0.0f32, |s, v| s + v) * 100.0) } else { String::new() }
                    )
                });
                let out_norm = e.output.iter().map(|v| v * v).sum::<f32>().sqrt();
                view! {
                    <p class="muted">{format!("Layer {} · head {} (reads key/value head {}) · query {} ‘{}’ · head size d = {}{}.", e.layer, e.head, e.kv_head, e.query, label(&tok(e.query)), e.head_dim, e.window.map(|w| format!(" · sliding window {w}")).unwrap_or_default())}</p>
                    <ol class="steps">
                        <li><strong>"q · k"</strong>": the query vector of this token meets the key vector of every earlier token; a large dot product means a good match."</li>
                        <li><strong>{format!("÷ √d = ÷ {sqrt_d:.0}")}</strong>": keeps the scores in a range where softmax still spreads attention (try “skip ÷√d”: it turns almost one-hot)."</li>
                        <li><strong>"mask"</strong>": keys after the query are not in the row at all — a token cannot look at the future"{e.window.map(|w| format!(", and on this local layer not further back than {w} tokens"))}"."</li>
                        <li><strong>"softmax"</strong>": scores become probabilities that sum to 1 — the row of the map above."</li>
                        <li><strong>"· V"</strong>": each key's value vector is weighted by its probability and summed into the head's output; the last column is each key's share, ‖p·v‖."</li>
                    </ol>
                    {summary.map(|s| view! { <p class="whatif-summary" role="status">{s}</p> })}
                    <table class="steps-table">
                        <thead><tr>
                            <th scope="col">"key"</th><th scope="col">"token"</th><th scope="col">"q · k"</th><th scope="col">"÷ √d"</th><th scope="col">"softmax"</th><th scope="col">"‖p·v‖"</th>
                            {alt.is_some().then(|| view! { <th scope="col">"what-if"</th> })}
                        </tr></thead>
                        <tbody>
                            {keys.into_iter().map(|j| {
                                let t = tok(j);
                                let a = alt.as_ref().map(|a| a[j]);
                                view! {
                                    <tr class:sink=j == 0>
                                        <td>{j}</td>
                                        <td><code>{label(&t)}</code></td>
                                        <td title=format!("q·k = {}", e.dot[j])>{bar(e.dot[j] / dmax, true, "dot")}<span class="num">{format!("{:.2}", e.dot[j])}</span></td>
                                        <td title=format!("score = {}", e.scores[j])><span class="num">{format!("{:.3}", e.scores[j])}</span></td>
                                        <td title=format!("p = {}", e.probs[j])>{bar(e.probs[j], false, "prob")}<span class="num">{format!("{:.4}", e.probs[j])}</span></td>
                                        <td title=format!("‖v‖ = {}, ‖p·v‖ = {}", e.value_norms[j], e.contrib_norms[j])>{bar(e.contrib_norms[j] / cmax, false, "contrib")}<span class="num">{format!("{:.3}", e.contrib_norms[j])}</span></td>
                                        {a.map(|a| view! { <td title=format!("what-if p = {a}")>{bar(a, false, "alt")}<span class="num">{format!("{a:.4}")}</span></td> })}
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                    {(n > MAX_KEYS).then(|| view! { <p class="muted">{format!("The {MAX_KEYS} keys with the most attention out of {n}, in order.")}</p> })}
                    <p class="muted">{format!("Output of the head (before the output projection): a {}-dimensional vector of norm {out_norm:.3}; entropy of the row {:.3} nats.", e.head_dim, e.entropy)}</p>
                }
            })}
            <super::through::ThroughModel/>
            <super::effect::AttentionVsEffect/>
        </section>
    }
}
