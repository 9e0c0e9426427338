//! Attention against effect ("attention is not explanation"): for the selected query, every
//! head's attention to one key against what knocking that head out alone does to the
//! prediction of the next token (Δ log p), as a scatter with words on why the two disagree.

use leptos::prelude::*;

use super::state::{Effects, Page};
use crate::worker::protocol::Request;

/// (layer, head, attention to the key, Δ log p) for every head measured.
fn points(e: &Effects, rows: &[Vec<f32>], n_head: usize, key: usize) -> Vec<(usize, usize, f32, f32)> {
    e.rows.iter().filter_map(|&(l, h, d)| rows.get(l * n_head + h).and_then(|r| r.get(key)).map(|&a| (l, h, a, d))).collect()
}

/// Pearson's r of (x, y).
fn correlation(xy: &[(f32, f32)]) -> f32 {
    let n = xy.len() as f64;
    if n < 2.0 {
        return f32::NAN;
    }
    let (mx, my) = (xy.iter().map(|p| p.0 as f64).sum::<f64>() / n, xy.iter().map(|p| p.1 as f64).sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in xy {
        let (dx, dy) = (x as f64 - mx, y as f64 - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    (sxy / (sxx * syy).sqrt()) as f32
}

fn csv(pts: &[(usize, usize, f32, f32)], key: &str, target: &str) -> String {
    let mut out = format!("layer,head,attention_to_{},delta_logp_{}\n", key.trim().replace([',', '"', '\n'], "_"), target.trim().replace([',', '"', '\n'], "_"));
    for (l, h, a, d) in pts {
        out.push_str(&format!("{l},{h},{a},{d}\n"));
    }
    out
}

#[component]
pub fn AttentionVsEffect() -> impl IntoView {
    let p = expect_context::<Page>();
    let chosen_key = RwSignal::new(None::<usize>);
    let hover = RwSignal::new(None::<(usize, usize, f32, f32)>);
    let tokens = p.tokens();
    // The key: chosen here, else the token the head shown reads most (not the first, not
    // itself), else the one the query's heads read most.
    let key = Memo::new(move |_| {
        let e = p.effects.get()?;
        let n_head = p.model.with(|m| m.as_ref().map(|m| m.n_head))?;
        let (l, h) = (p.layer.get(), p.head.get());
        let from_rows = p.query_rows.with(|r| {
            let (q, rows) = r.as_ref().filter(|(q, _)| *q == e.query)?;
            let row = rows.get(l * n_head + h)?;
            (1..*q).max_by(|a, b| row[*a].total_cmp(&row[*b])).or_else(|| crate::analysis::heads::likeliest_key(rows, *q))
        });
        chosen_key.get().filter(|k| *k <= e.query).or(from_rows).or(Some(0))
    });
    let n_runs = move || p.model.with(|m| m.as_ref().map(|m| m.n_layer * m.n_head + 1).unwrap_or(0));
    let (w, h, left, right, top, bottom) = (560.0f64, 300.0f64, 56.0f64, 16.0f64, 12.0f64, 44.0f64);
    view! {
        <section class="effects" aria-labelledby="effects-title">
            <h4 id="effects-title">"Attention against effect"</h4>
            <p class="muted">"Where a head looks is not what it does for the prediction. Knock each head out alone and measure how much harder the model finds the next token after the chosen one: the heads that look hardest at a word are often not the heads the prediction needs."</p>
            <div class="effects-controls">
                <button class="run-effects" on:click=move |_| p.request_effects() disabled=move || p.run.get().is_none() || p.model.get().is_none() || p.effects_progress.get().is_some() || p.query.get().is_none_or(|q| q + 1 >= tokens.with(Vec::len))>
                    {move || format!("Measure every head's effect ({} runs of the model)", n_runs())}
                </button>
                {move || p.effects_progress.get().map(|(d, t)| view! {
                    <progress max=t value=d></progress><span class="muted">{format!(" {d:.0} of {t:.0} runs ")}</span>
                    <button class="stop" on:click=move |_| { p.send(Request::Cancel); }>"Stop"</button>
                })}
                {move || p.query.get().filter(|q| q + 1 >= tokens.with(Vec::len)).map(|_| view! { <span class="muted">"Pick a token that has a next one (not the last)."</span> })}
            </div>
            {move || {
                let e = p.effects.get()?;
                let n_head = p.model.with(|m| m.as_ref().map(|m| m.n_head))?;
                let k = key.get()?;
                let toks = tokens.get();
                let rows = p.query_rows.with(|r| r.as_ref().filter(|(q, _)| *q == e.query).map(|(_, rows)| rows.clone()))?;
                let pts = points(&e, &rows, n_head, k);
                let tok = |i: usize| toks.get(i).cloned().unwrap_or_default();
                let (key_text, query_text) = (tok(k), tok(e.query));
                let (lo, hi) = (pts.iter().map(|p| p.3).fold(0.0f32, f32::min).min(-0.1) as f64, pts.iter().map(|p| p.3).fold(0.0f32, f32::max).max(0.1) as f64);
                // A margin, so that no point sits on the axis.
                let (ymin, ymax) = (lo - 0.06 * (hi - lo), hi + 0.06 * (hi - lo));
                let x = move |a: f64| left + (w - left - right) * a;
                let y = move |d: f64| top + (h - top - bottom) * (ymax - d) / (ymax - ymin);
                let step = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0].into_iter().find(|s| (ymax - ymin) / s <= 6.0).unwrap_or(10.0);
                let yticks: Vec<f64> = ((ymin / step).ceil() as i64..=(ymax / step).floor() as i64).map(|i| i as f64 * step).collect();
                let r = correlation(&pts.iter().map(|p| (p.2, -p.3)).collect::<Vec<_>>());
                let mut by_attention = pts.clone();
                by_attention.sort_by(|a, b| b.2.total_cmp(&a.2));
                let mut by_effect = pts.clone();
                by_effect.sort_by(|a, b| a.3.total_cmp(&b.3));
                let name = |p: &(usize, usize, f32, f32)| format!("{}.{} (attention {:.2}, Δ {:+.2})", p.0, p.1, p.2, p.3);
                let most_look: Vec<String> = by_attention.iter().take(3).map(name).collect();
                let most_need: Vec<String> = by_effect.iter().take(3).map(name).collect();
                let shared = by_attention.iter().take(10).filter(|a| by_effect.iter().take(10).any(|b| (a.0, a.1) == (b.0, b.1))).count();
                let current = (p.layer.get(), p.head.get());
                let csv_text = csv(&pts, &key_text, &e.target);
                let finding = format!("Look most at {key_text:?}: {}. Needed most for {:?}: {}. {shared} of the 10 heads that look most are among the 10 most needed; correlation of attention with the loss r = {r:.2}.{}", most_look.join(", "), e.target, most_need.join(", "), if e.cancelled { format!(" (Stopped early: {} heads measured.)", e.rows.len()) } else { String::new() });
                let (kt, qt, target) = (key_text.clone(), query_text.clone(), e.target.clone());
                Some(view! {
                    <label>"key "<select class="effects-key" on:change=move |ev| chosen_key.set(event_target_value(&ev).parse().ok())>
                        {(0..=e.query).map(|j| view! { <option value=j.to_string() selected=j == k>{format!("{j}: {:?}", tok(j))}</option> }).collect_view()}
                    </select></label>
                    <figure class="effects-figure">
                        <svg class="effects-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label=format!("every head: attention from {query_text:?} to {key_text:?} against the change in log p of {:?} when the head is knocked out", e.target) on:mouseleave=move |_| hover.set(None)>
                            {yticks.iter().map(|&t| view! {
                                <line x1=left x2=w - right y1=y(t) y2=y(t) class="grid"/>
                                <text x=left - 6.0 y=y(t) + 4.0 text-anchor="end" font-size="11">{format!("{t:+.1}")}</text>
                            }).collect_view()}
                            {[0.0, 0.25, 0.5, 0.75, 1.0].into_iter().map(|a| view! { <text x=x(a) y=h - bottom + 16.0 text-anchor="middle" font-size="11">{format!("{a}")}</text> }).collect_view()}
                            <line x1=left x2=w - right y1=y(0.0) y2=y(0.0) class="zero-line"/>
                            <text x=(left + w - right) / 2.0 y=h - 6.0 text-anchor="middle" font-size="12">{format!("attention from {query_text:?} to {key_text:?}")}</text>
                            <text x="12" y=(top + h - bottom) / 2.0 text-anchor="middle" font-size="12" transform=format!("rotate(-90 12 {})", (top + h - bottom) / 2.0)>{format!("Δ log p of {:?} (knocked out)", e.target)}</text>
                            {pts.iter().map(|&pt| {
                                let (l, hd, a, d) = pt;
                                view! {
                                    <circle class="effect-point" class:current={(l, hd) == current} cx=x(a as f64) cy=y(d as f64) r=if (l, hd) == current { 5.5 } else { 3.5 } data-layer=l data-head=hd on:mouseenter=move |_| hover.set(Some(pt))>
                                        <title>{format!("layer {l} head {hd}: attention {a:.3}, Δ log p {d:+.3}")}</title>
                                    </circle>
                                }
                            }).collect_view()}
                        </svg>
                        <figcaption>
                            <p class="hover-readout" aria-live="polite">{move || hover.get().map(|(l, hd, a, d)| format!("Layer {l} head {hd}: {:.1}% of its attention from {qt:?} goes to {kt:?}; knocked out, log p of {target:?} changes by {d:+.3}.", a * 100.0)).unwrap_or_else(|| "Hover a point: one head each; the larger point is the head shown above; lower is more needed.".into())}</p>
                            <p class="effects-finding">{finding}</p>
                            <p class="muted">"Why they disagree: attention says where a head reads, not how much what it reads matters. A head can look hard at a token whose value vector is small (the ‖p·v‖ column above) or that the output projection mostly ignores; many heads can read the same token, so none of them is needed alone; and later layers can make up for a missing head. That is the point of Jain and Wallace's “Attention is not Explanation” (2019) — and of Wiegreffe and Pinter's reply (2019) that it sometimes is: measure, as here, rather than read the map."</p>
                        </figcaption>
                    </figure>
                    <div class="exports"><button on:click=move |_| super::download("attnlab-attention-vs-effect.csv", "text/csv", &csv_text)>"CSV"</button></div>
                })
            }}
        </section>
    }
}
