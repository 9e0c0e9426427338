//! The vectors themselves. "A word through the layers" (the layer-by-layer tab, `view="vectors"`):
//! one word in two texts, how alike their residual vectors are after the embedding and after
//! every block, and what each is closest to through the logit lens — the "bare-bone token"
//! that context makes richer. "Queries and keys" (the head tab, `view="qk"`): the shown head's
//! query and key of every token as points on two axes, with what each query reads most.

use leptos::prelude::*;

use super::state::Page;
use crate::analysis::vectors::{QkPoints, WordVectors};

/// The two texts and the word shown first.
pub fn default_pair() -> (String, String, String) {
    ("She sat on the bank of the river.".into(), "She deposited cash at the bank.".into(), "bank".into())
}

/// The pair a URL or an element asks for (`first`, `second`, `word`; each defaults alone).
pub fn pair_of(s: &crate::settings::Restore) -> (String, String, String) {
    let (a, b, w) = default_pair();
    (s.get("first").map(String::from).unwrap_or(a), s.get("second").map(String::from).unwrap_or(b), s.get("word").map(String::from).unwrap_or(w))
}

/// A token as a reader sees it.
fn shown(t: &str) -> String {
    format!("“{}”", t.replace('\n', "⏎"))
}

fn vectors_csv(v: &WordVectors) -> String {
    let mut out = String::from("\"layer\",\"cosine\",\"norm (first)\",\"norm (second)\",\"nearest (first)\",\"nearest (second)\"\n");
    let near = |n: Option<&Vec<(u32, String, f32)>>| n.map(|n| n.iter().map(|(_, t, p)| format!("{t} {p:.3}")).collect::<Vec<_>>().join(" | ").replace('"', "\"\"")).unwrap_or_default();
    for (l, c) in v.cosine.iter().enumerate() {
        let name = if l == 0 { "embedding".to_string() } else { (l - 1).to_string() };
        let (na, nb) = (near(l.checked_sub(1).and_then(|i| v.a.nearest.get(i))), near(l.checked_sub(1).and_then(|i| v.b.nearest.get(i))));
        out.push_str(&format!("\"{name}\",{c},{},{},\"{na}\",\"{nb}\"\n", v.a.norms[l], v.b.norms[l]));
    }
    out
}

/// A word through the layers: the two texts, the word, the curve of cosines and the nearest
/// tokens of each vector layer by layer.
#[component]
pub fn WordVectorsPanel() -> impl IntoView {
    let p = expect_context::<Page>();
    let hover = RwSignal::new(None::<usize>);
    let set = move |i: usize, v: String| {
        p.pair.update(|pair| match i {
            0 => pair.0 = v,
            1 => pair.1 = v,
            _ => pair.2 = v,
        })
    };
    let (w, h, left, right, top, bottom) = (640.0f64, 240.0f64, 48.0f64, 16.0f64, 12.0f64, 40.0f64);
    view! {
        <section class="vectors" aria-labelledby="vectors-title">
            <h3 id="vectors-title">"A word through the layers"</h3>
            <p class="muted">"A token enters the model as the same vector wherever it stands: “bank” by a river and “bank” with cash start identical. Every layer adds what the context says to it. Here one word in two texts is followed through the model: how alike its two vectors are after each layer (cosine similarity: 1 = the same direction), and what each would make the model predict if it stopped there."</p>
            <div class="vectors-controls">
                <label>"first text "<input class="vectors-a" type="text" size="34" prop:value=move || p.pair.get().0 on:change=move |ev| set(0, event_target_value(&ev))/></label>
                <label>"second text "<input class="vectors-b" type="text" size="34" prop:value=move || p.pair.get().1 on:change=move |ev| set(1, event_target_value(&ev))/></label>
                <label>"word "<input class="vectors-word" type="text" size="10" prop:value=move || p.pair.get().2 on:change=move |ev| set(2, event_target_value(&ev))/></label>
                <button class="run-vectors primary" on:click=move |_| p.request_vectors() disabled=move || p.model.get().is_none() || p.vectors_running.get()>
                    {move || if p.vectors_running.get() { "Reading both texts…" } else { "Compare" }}
                </button>
            </div>
            {move || p.vectors.get().map(|v| {
                let n = v.cosine.len();
                let lo = v.cosine.iter().cloned().fold(1.0f32, f32::min).min(0.0) as f64;
                let lo = (lo * 5.0).floor() / 5.0;
                let x = move |l: usize| left + (w - left - right) * l as f64 / (n - 1).max(1) as f64;
                let y = move |c: f64| top + (h - top - bottom) * (1.0 - (c - lo) / (1.0 - lo));
                let pts: String = v.cosine.iter().enumerate().map(|(l, &c)| format!("{:.1},{:.1}", x(l), y(c as f64))).collect::<Vec<_>>().join(" ");
                let yticks: Vec<f64> = (0..=((1.0 - lo) / 0.2).round() as usize).map(|k| lo + 0.2 * k as f64).collect();
                // emb, then layers 5, 10, … and the last (layer 0 would sit on emb).
                let xticks: Vec<usize> = (0..n).filter(|&l| l == 0 || (l > 1 && (l - 1) % 5 == 0 && l + 2 < n) || l == n - 1).collect();
                let (ta, tb) = (v.a.tokens[v.a.at].clone(), v.b.tokens[v.b.at].clone());
                // The lowest point, when it is not the last layer's.
                let lowest = v.cosine.iter().enumerate().skip(1).min_by(|a, b| a.1.total_cmp(b.1)).filter(|(l, _)| *l != n - 1).map(|(l, c)| (l - 1, *c));
                let finding = format!(
                    "{} in the first text and {} in the second: cosine {:.2} after the embedding, {:.2} after the last layer{}.",
                    shown(&ta), shown(&tb), v.cosine[0], v.cosine[n - 1],
                    lowest.map(|(l, c)| format!(", lowest {c:.2} after layer {l}")).unwrap_or_default());
                let readout = {
                    let v = v.clone();
                    move || hover.get().map(|l| {
                        let near = |s: &crate::analysis::vectors::WordSide| l.checked_sub(1).and_then(|i| s.nearest.get(i)).map(|n| n.iter().take(3).map(|(_, t, p)| format!("{} {:.0}%", shown(t), p * 100.0)).collect::<Vec<_>>().join(", ")).unwrap_or_else(|| "—".into());
                        let name = if l == 0 { "after the embedding".to_string() } else { format!("after layer {}", l - 1) };
                        format!("{name}: cosine {:.3}; the first would predict {}; the second {}", v.cosine[l], near(&v.a), near(&v.b))
                    }).unwrap_or_else(|| "Hover the chart (or focus it and use ← →) for a layer's values.".into())
                };
                let on_move = move |ev: web_sys::MouseEvent| {
                    let Some(t) = ev.current_target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok()) else { return };
                    let r = t.get_bounding_client_rect();
                    let fx = (ev.client_x() as f64 - r.left()) / r.width() * w;
                    hover.set(Some((((fx - left) / (w - left - right)) * (n - 1) as f64).round().clamp(0.0, (n - 1) as f64) as usize));
                };
                let on_key = move |ev: web_sys::KeyboardEvent| {
                    let now = hover.get_untracked().unwrap_or(0);
                    match ev.key().as_str() {
                        "ArrowRight" => hover.set(Some((now + 1).min(n - 1))),
                        "ArrowLeft" => hover.set(Some(now.saturating_sub(1))),
                        _ => return,
                    }
                    ev.prevent_default();
                };
                let csv = vectors_csv(&v);
                let json = serde_json::to_string_pretty(&v).unwrap_or_default();
                let rows = v.clone();
                view! {
                    <figure class="vectors-figure">
                        <svg class="vectors-chart" viewBox=format!("0 0 {w} {h}") role="img" tabindex="0" aria-label=format!("cosine similarity of {} and {} after each layer", shown(&ta), shown(&tb)) on:mousemove=on_move on:mouseleave=move |_| hover.set(None) on:keydown=on_key>
                            {yticks.iter().map(|&t| view! {
                                <line x1=left x2=w - right y1=y(t) y2=y(t) class="grid"/>
                                <text x=left - 6.0 y=y(t) + 4.0 text-anchor="end" font-size="11">{format!("{t:.1}")}</text>
                            }).collect_view()}
                            {xticks.iter().map(|&l| view! { <text x=x(l) y=h - bottom + 16.0 text-anchor="middle" font-size="11">{if l == 0 { "emb".to_string() } else { (l - 1).to_string() }}</text> }).collect_view()}
                            <text x=(left + w - right) / 2.0 y=h - 6.0 text-anchor="middle" font-size="12">"after the embedding (emb), then after each layer"</text>
                            <text x="12" y=(top + h - bottom) / 2.0 text-anchor="middle" font-size="12" transform=format!("rotate(-90 12 {})", (top + h - bottom) / 2.0)>"cosine similarity"</text>
                            <polyline points=pts fill="none" class="cos-line" stroke-width="2"/>
                            {v.cosine.iter().enumerate().map(|(l, &c)| view! { <circle cx=x(l) cy=y(c as f64) r="2.5" class="cos-point" data-layer=l><title>{format!("{}: {c:.3}", if l == 0 { "embedding".to_string() } else { format!("layer {}", l - 1) })}</title></circle> }).collect_view()}
                            {move || hover.get().map(|l| view! { <line x1=x(l) x2=x(l) y1=top y2=h - bottom class="hover-line"/> })}
                        </svg>
                        <figcaption>
                            <p class="vectors-finding">{finding}</p>
                            <p class="hover-readout" aria-live="polite">{readout}</p>
                            <p class="muted">"Residual vectors of this model share a large common part, so even unrelated tokens stay fairly alike: read where the curve falls, not its level. The nearest tokens are what the model would predict next from that vector alone (the logit lens)."</p>
                        </figcaption>
                    </figure>
                    <details class="vectors-nearest">
                        <summary>"What each vector is closest to, layer by layer"</summary>
                        <table class="nearest">
                            <thead><tr><th scope="col">"layer"</th><th scope="col">"cosine"</th><th scope="col">{format!("{} (first text) would predict", shown(&ta))}</th><th scope="col">{format!("{} (second text) would predict", shown(&tb))}</th></tr></thead>
                            <tbody>
                                {rows.a.nearest.iter().zip(&rows.b.nearest).enumerate().map(|(l, (na, nb))| {
                                    let cell = |n: &Vec<(u32, String, f32)>| n.iter().take(3).map(|(_, t, p)| format!("{} {:.0}%", shown(t), p * 100.0)).collect::<Vec<_>>().join(", ");
                                    view! { <tr><td>{l}</td><td class="num">{format!("{:.3}", rows.cosine[l + 1])}</td><td>{cell(na)}</td><td>{cell(nb)}</td></tr> }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </details>
                    <div class="exports">
                        <button on:click=move |_| super::download("attnlab-word-through-layers.csv", "text/csv", &csv)>"CSV"</button>
                        <button on:click=move |_| super::download("attnlab-word-through-layers.json", "application/json", &json)>"JSON"</button>
                    </div>
                }
            })}
        </section>
    }
}

fn qk_csv(q: &QkPoints) -> String {
    let mut out = format!("\"token\",\"position\",\"query axis 1\",\"query axis 2\",\"key axis 1\",\"key axis 2\",\"reads most\",\"weight\"\n");
    for (i, t) in q.tokens.iter().enumerate() {
        let link = q.links.iter().find(|l| l.0 == i);
        let (to, wt) = link.map(|l| (q.tokens[l.1].replace('"', "\"\""), l.2)).unwrap_or_default();
        out.push_str(&format!("\"{}\",{i},{},{},{},{},\"{to}\",{wt}\n", t.replace('"', "\"\""), q.queries[i][0], q.queries[i][1], q.keys[i][0], q.keys[i][1]));
    }
    out
}

/// The shown head's queries (triangles) and keys (circles) as points on their two principal
/// axes; lines join each query to the keys it reads most (the picked query's drawn strong).
#[component]
pub fn QkPanel() -> impl IntoView {
    let p = expect_context::<Page>();
    let hover = RwSignal::new(None::<(bool, usize)>);
    // Follows the head shown and each new run (`request_qk` asks only when needed).
    Effect::new(move |_| {
        p.layer.track();
        p.head.track();
        p.run.track();
        if p.view.get() == super::View::Qk || p.show_qk.get() {
            p.request_qk();
        }
    });
    let (w, h, pad) = (520.0f64, 420.0f64, 44.0f64);
    view! {
        <section class="qk" aria-labelledby="qk-title">
            <h3 id="qk-title">"Queries and keys as points"</h3>
            <p class="muted">"Each token asks with its query and is found by its key. Here the shown head's query and key of every token become points: the two axes along which these vectors differ most (principal components). A query lands near the keys it matches strongly only in part — the scores use every dimension, this picture two — so lines join each query to the keys it actually reads most."</p>
            {move || (!p.show_qk.get() && p.view.get() != super::View::Qk).then(|| view! {
                <button class="show-qk" on:click=move |_| p.show_qk.set(true) disabled=move || p.run.get().is_none()>"Show this head's queries and keys"</button>
            })}
            {move || p.qk.get().filter(|_| p.show_qk.get() || p.view.get() == super::View::Qk).map(|q| {
                let all: Vec<[f32; 2]> = q.queries.iter().chain(&q.keys).copied().collect();
                let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
                for c in &all {
                    x0 = x0.min(c[0]);
                    x1 = x1.max(c[0]);
                    y0 = y0.min(c[1]);
                    y1 = y1.max(c[1]);
                }
                let (sx, sy) = (((x1 - x0) as f64).max(1e-6), ((y1 - y0) as f64).max(1e-6));
                let x = move |v: f32| pad + (w - 2.0 * pad) * ((v - x0) as f64 / sx);
                let y = move |v: f32| h - pad - (h - 2.0 * pad) * ((v - y0) as f64 / sy);
                let n = q.tokens.len();
                let picked = p.query.get().unwrap_or(n.saturating_sub(1)).min(n.saturating_sub(1));
                let labels = n <= 24;
                let ticks = |lo: f32, hi: f32| -> Vec<f32> {
                    let step = super::nice(((hi - lo) / 4.0) as f64) as f32;
                    let first = (lo / step).ceil() as i64;
                    (first..).map(|k| k as f32 * step).take_while(|v| *v <= hi).collect()
                };
                let (xt, yt) = (ticks(x0, x1), ticks(y0, y1));
                let links = q.links.clone();
                let tokens = q.tokens.clone();
                let readout = {
                    let q = q.clone();
                    move || hover.get().map(|(is_q, i)| {
                        let t = shown(&q.tokens[i]);
                        if is_q {
                            let reads: Vec<String> = q.links.iter().filter(|l| l.0 == i).map(|l| format!("{} {:.0}%", shown(&q.tokens[l.1]), l.2 * 100.0)).collect();
                            format!("query of {t} (token {i}) reads most {}", reads.join(", "))
                        } else {
                            let by: Vec<String> = q.links.iter().filter(|l| l.1 == i).take(6).map(|l| shown(&q.tokens[l.0])).collect();
                            format!("key of {t} (token {i}){}", if by.is_empty() { String::new() } else { format!(", read most by {}", by.join(", ")) })
                        }
                    }).unwrap_or_else(|| "Hover a point: which token it is, and what its query reads (or whose queries read its key).".into())
                };
                let csv = qk_csv(&q);
                let json = serde_json::to_string_pretty(&q).unwrap_or_default();
                let name = format!("attnlab-qk-L{}-H{}", q.layer, q.head);
                view! {
                    <figure class="qk-figure">
                        <svg class="qk-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label=format!("queries and keys of layer {} head {} on two axes", q.layer, q.head) on:mouseleave=move |_| hover.set(None)>
                            {xt.iter().map(|&t| view! { <line x1=x(t) x2=x(t) y1=pad y2=h - pad class="grid"/><text x=x(t) y=h - pad + 14.0 text-anchor="middle" font-size="10">{format!("{t}")}</text> }).collect_view()}
                            {yt.iter().map(|&t| view! { <line x1=pad x2=w - pad y1=y(t) y2=y(t) class="grid"/><text x=pad - 4.0 y=y(t) + 3.0 text-anchor="end" font-size="10">{format!("{t}")}</text> }).collect_view()}
                            <text x=w / 2.0 y=h - 8.0 text-anchor="middle" font-size="12">{format!("axis 1 ({:.0}% of the spread)", q.explained[0] * 100.0)}</text>
                            <text x="12" y=h / 2.0 text-anchor="middle" font-size="12" transform=format!("rotate(-90 12 {})", h / 2.0)>{format!("axis 2 ({:.0}%)", q.explained[1] * 100.0)}</text>
                            {links.iter().filter(|l| n <= 64 || l.0 == picked).map(|&(i, j, wt)| {
                                let strong = i == picked;
                                view! { <line x1=x(q.queries[i][0]) y1=y(q.queries[i][1]) x2=x(q.keys[j][0]) y2=y(q.keys[j][1]) class="qk-link" class:strong=strong stroke-opacity=if strong { 0.9 } else { (0.15 + 0.5 * wt as f64).min(0.6) }/> }
                            }).collect_view()}
                            {q.keys.iter().enumerate().map(|(i, c)| view! {
                                <circle cx=x(c[0]) cy=y(c[1]) r="4.5" class="qk-key" on:mouseenter=move |_| hover.set(Some((false, i)))><title>{format!("key of {}", shown(&tokens[i]))}</title></circle>
                            }).collect_view()}
                            {q.queries.iter().enumerate().map(|(i, c)| {
                                let (cx, cy) = (x(c[0]), y(c[1]));
                                view! { <path d=format!("M{:.1},{:.1} l5,9 l-10,0 z", cx, cy - 6.0) class="qk-query" class:picked=i == picked on:mouseenter=move |_| hover.set(Some((true, i)))><title>{format!("query of {}", shown(&q.tokens[i]))}</title></path> }
                            }).collect_view()}
                            {labels.then(|| q.keys.iter().enumerate().map(|(i, c)| view! { <text x=x(c[0]) + 6.0 y=y(c[1]) + 3.0 font-size="10" class="qk-label">{q.tokens[i].trim().to_string()}</text> }).collect_view())}
                        </svg>
                        <figcaption>
                            <p class="qk-legend"><span class="qk-swatch key"></span>" key  "<span class="qk-swatch query"></span>" query  — lines: what each query reads most (the picked token's drawn strong)"</p>
                            <p class="hover-readout" aria-live="polite">{readout}</p>
                            <p class="muted">{format!("Layer {} · head {}: the two axes hold {:.0}% of the spread of these {} vectors. Keys are drawn after RoPE, as the scores use them.", q.layer, q.head, (q.explained[0] + q.explained[1]) * 100.0, 2 * n)}</p>
                        </figcaption>
                    </figure>
                    <div class="exports">
                        <button on:click={ let name = name.clone(); move |_| super::download(&format!("{name}.csv"), "text/csv", &csv) }>"CSV"</button>
                        <button on:click=move |_| super::download(&format!("{name}.json"), "application/json", &json)>"JSON"</button>
                    </div>
                }
            })}
        </section>
    }
}
