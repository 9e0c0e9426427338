//! The "From scratch" tab: attention on a toy vocabulary, every step a small labelled matrix
//! with the value on hover; edit the sentence or a weight, re-roll the seed, switch the mask
//! and two heads — everything updates at once (no model, no worker).

use leptos::prelude::*;

use super::state::Page;
use super::View;
use crate::analysis::minilab::{run, scale_study, Lab, Mask, Mat, ScaleStudy, D, VOCAB};

/// Diverging colour for signed values (blue negative, orange positive), probabilities on the
/// map's blue ramp.
fn cell_style(v: f32, max: f32, prob: bool) -> String {
    if !v.is_finite() {
        return "background:#e2e4e9;color:#5b6475".into();
    }
    if prob {
        let [r, g, b] = super::heatmap::ramp(v.sqrt());
        return format!("background:rgb({r},{g},{b});color:{}", if v > 0.35 { "#fff" } else { "#1d2330" });
    }
    let t = (v.abs() / max.max(1e-6)).min(1.0);
    let (r, g, b) = if v >= 0.0 { (255.0 - 23.0 * t, 255.0 - 120.0 * t, 255.0 - 210.0 * t) } else { (255.0 - 190.0 * t, 255.0 - 110.0 * t, 255.0 - 30.0 * t) };
    format!("background:rgb({:.0},{:.0},{:.0})", r, g, b)
}

/// One step as a matrix: rows and columns labelled, exact value on hover.
#[component]
fn Matrix(title: String, caption: &'static str, m: Mat, rows: Vec<String>, cols: Vec<String>, #[prop(optional)] prob: bool) -> impl IntoView {
    let max = m.iter().flatten().filter(|v| v.is_finite()).fold(0f32, |a, v| a.max(v.abs()));
    let look = use_context::<super::heatmap::Look>();
    view! {
        <figure class="mat">
            <figcaption><strong>{title.clone()}</strong>" "<span class="muted">{caption}</span></figcaption>
            <table aria-label=title>
                <thead><tr><th></th>{cols.iter().map(|c| view! { <th scope="col">{c.clone()}</th> }).collect_view()}</tr></thead>
                <tbody>
                    {m.iter().zip(rows).map(|(r, label)| view! {
                        <tr><th scope="row">{label.clone()}</th>
                            {r.iter().enumerate().map(|(j, &v)| view! {
                                <td style=move || { super::heatmap::use_palette(look); cell_style(v, max, prob) } title=format!("{label}, {}: {}", cols.get(j).cloned().unwrap_or_default(), if v.is_finite() { v.to_string() } else { "−∞ (masked)".into() })>
                                    {if v.is_finite() { format!("{v:.2}") } else { "−∞".into() }}
                                </td>
                            }).collect_view()}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </figure>
    }
}

/// An editable weight matrix.
#[component]
fn Weights(name: &'static str, lab: RwSignal<Lab>, pick: fn(&mut Lab) -> &mut Mat) -> impl IntoView {
    view! {
        <figure class="mat weights">
            <figcaption><strong>{name}</strong>" "<span class="muted">"(8 × 8, editable)"</span></figcaption>
            <table aria-label=name><tbody>
                {(0..D).map(|r| view! { <tr>{(0..D).map(|c| view! {
                    <td><input type="number" step="0.1" aria-label={format!("{name} row {r} column {c}")}
                        prop:value=move || format!("{:.2}", lab.with(|l| { let mut l = l.clone(); pick(&mut l)[r][c] }))
                        on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f32>() { lab.update(|l| pick(l)[r][c] = v) } }/></td>
                }).collect_view()}</tr> }).collect_view()}
            </tbody></table>
        </figure>
    }
}

/// The whole lab: in the playground's tab (with a button to the same steps on the real model)
/// and in `<attn-lab view="lab">` (no model at all).
#[component]
pub fn MiniLab() -> impl IntoView {
    let page = use_context::<Page>();
    let lab = RwSignal::new(Lab::new(1));
    let tokens = RwSignal::new(vec![0usize, 1, 3, 4, 5]); // the cat sat on mat
    let mask = RwSignal::new(Mask::Causal);
    let heads = RwSignal::new(1usize);
    let steps = Memo::new(move |_| run(&lab.get(), &tokens.get(), mask.get(), heads.get()));
    let words = move || tokens.get().iter().map(|&t| VOCAB[t].to_string()).collect::<Vec<_>>();
    let dims = |r: std::ops::Range<usize>| r.map(|c| format!("d{c}")).collect::<Vec<_>>();
    view! {
        <div class="minilab">
            <p class="muted">"Attention from scratch: five words from a ten-word vocabulary, each an 8-number embedding; three 8 × 8 weight matrices turn them into queries, keys and values. Every number below follows from the ones above it — change a word, a weight or the seed and watch each step update."</p>
            <div class="lab-controls">
                {(0..5).map(|i| view! {
                    <select aria-label={format!("word {}", i + 1)} on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<usize>() { tokens.update(|t| t[i] = v) } }>
                        {VOCAB.iter().enumerate().map(|(k, w)| view! { <option value=k.to_string() selected=move || tokens.get()[i] == k>{*w}</option> }).collect_view()}
                    </select>
                }).collect_view()}
                <button on:click=move |_| lab.set(Lab::new(lab.get_untracked().seed + 1))>{move || format!("Re-roll weights (seed {})", lab.get().seed)}</button>
                <label>"Mask "<select aria-label="mask" on:change=move |ev| mask.set(match event_target_value(&ev).as_str() { "zero" => Mask::Zero, "none" => Mask::None, _ => Mask::Causal })>
                    <option value="causal" selected=move || mask.get() == Mask::Causal>"causal: the future set to −∞"</option>
                    <option value="zero" selected=move || mask.get() == Mask::Zero>"buggy: the future set to 0"</option>
                    <option value="none" selected=move || mask.get() == Mask::None>"none"</option>
                </select></label>
                <label><input type="checkbox" prop:checked=move || heads.get() == 2 on:change=move |ev| heads.set(if event_target_checked(&ev) { 2 } else { 1 })/>" 2 heads × 4 dims"</label>
                {page.map(|p| view! { <button class="to-real-model" on:click=move |_| { p.view.set(View::Head); if p.run.with_untracked(|r| r.is_none()) { p.start_run() } else { p.request_head(None) } }>"The same steps on the real model →"</button> })}
            </div>
            {move || {
                let s = steps.get();
                let w = words();
                view! {
                    <div class="mat-row">
                        <Matrix title="X".into() caption="embeddings (5 × 8)" m=s.x.clone() rows=w.clone() cols=dims(0..D)/>
                        <Matrix title="Q = X·W_Q".into() caption="what each word looks for" m=s.q.clone() rows=w.clone() cols=dims(0..D)/>
                        <Matrix title="K = X·W_K".into() caption="what each word offers" m=s.k.clone() rows=w.clone() cols=dims(0..D)/>
                        <Matrix title="V = X·W_V".into() caption="what each word passes on" m=s.v.clone() rows=w.clone() cols=dims(0..D)/>
                    </div>
                    {s.heads.iter().enumerate().map(|(h, hs)| {
                        let dh = hs.dims.len();
                        let name = if s.heads.len() > 1 { format!("head {h} (dims {}–{}): ", hs.dims.start, hs.dims.end - 1) } else { String::new() };
                        view! {
                            <div class="mat-row">
                                <Matrix title=format!("{name}QKᵀ") caption="query rows · key columns" m=hs.qk.clone() rows=w.clone() cols=w.clone()/>
                                <Matrix title=format!("÷ √{dh}") caption="scaled scores" m=hs.scaled.clone() rows=w.clone() cols=w.clone()/>
                                <Matrix title="mask".to_string() caption=match mask.get() { Mask::Causal => "the future set to −∞", Mask::Zero => "the future set to 0: e⁰ = 1 leaks into each row", Mask::None => "nothing hidden" } m=hs.masked.clone() rows=w.clone() cols=w.clone()/>
                                <Matrix title="softmax".to_string() caption="each row sums to 1" m=hs.probs.clone() rows=w.clone() cols=w.clone() prob=true/>
                                <Matrix title="· V".to_string() caption="the head's output" m=hs.out.clone() rows=w.clone() cols=dims(hs.dims.clone())/>
                            </div>
                        }
                    }).collect_view()}
                }
            }}
            {move || (mask.get() == Mask::Zero).then(|| {
                let leak: f32 = steps.with(|s| s.heads[0].probs.iter().enumerate().map(|(i, r)| r[i + 1..].iter().sum::<f32>()).sum::<f32>() / r_len(&s.heads[0].probs));
                view! { <p class="notice">{format!("With zeros instead of −∞ each future key keeps e⁰ = 1 before the softmax: on average {:.0}% of a word's attention lands on words that come after it — words it could not have seen while writing.", leak * 100.0)}</p> }
            })}
            <ScaleLab/>
            <details>
                <summary>"Edit the weights"</summary>
                <div class="mat-row">
                    <Weights name="W_Q" lab=lab pick=|l| &mut l.wq/>
                    <Weights name="W_K" lab=lab pick=|l| &mut l.wk/>
                    <Weights name="W_V" lab=lab pick=|l| &mut l.wv/>
                </div>
            </details>
        </div>
    }
}

fn r_len(m: &Mat) -> f32 {
    m.len().max(1) as f32
}

/// Trials per point: enough for a ~2% spread estimate, bounded so a redraw stays quick.
fn trials_for(n: usize) -> usize {
    (6000 / n.max(1)).clamp(16, 300)
}

/// Why ÷√d: random unit-variance queries and keys of width d against n keys, measured.
#[component]
fn ScaleLab() -> impl IntoView {
    let log_d = RwSignal::new(6u32); // d = 64
    let log_n = RwSignal::new(5u32); // n = 32
    let ds: Vec<usize> = (2..=9).map(|k| 1usize << k).collect();
    let curve = Memo::new(move |_| {
        let n = 1usize << log_n.get();
        ds.iter().enumerate().map(|(i, &d)| scale_study(d, n, trials_for(n), 11 + i as u64)).collect::<Vec<ScaleStudy>>()
    });
    let chosen = move || curve.with(|c| c[(log_d.get() - 2) as usize]);
    view! {
        <section class="scale-lab">
            <h3>"Why divide by √d?"</h3>
            <p class="muted">"Each query and key below is d random numbers with mean 0 and spread 1 — what a layer's inputs look like on average. Their dot product adds d such products, so its spread grows like √d: at d = 64 the scores already spread about ±8, and the softmax turns a gap of 8 into a ratio of e⁸ ≈ 3000 — nearly all weight on one key, and a weight that hardly moves when the scores change (its gradient fades). Dividing by √d brings the spread back to 1 whatever d is. Move the number of tokens too: the spread does not change with it — the scale is about the width of a head, not the length of the text."</p>
            <div class="lab-controls">
                <label>{move || format!("d = {} ", 1usize << log_d.get())}<input type="range" min="2" max="9" step="1" aria-label="head width d" prop:value=move || log_d.get() on:input=move |ev| log_d.set(event_target_value(&ev).parse().unwrap_or(6))/></label>
                <label>{move || format!("tokens n = {} ", 1usize << log_n.get())}<input type="range" min="1" max="8" step="1" aria-label="number of keys n" prop:value=move || log_n.get() on:input=move |ev| log_n.set(event_target_value(&ev).parse().unwrap_or(5))/></label>
            </div>
            {move || {
                let c = curve.get();
                let pick = chosen();
                let (w, h, left, bottom, top, right) = (520.0, 220.0, 48.0, 34.0, 12.0, 12.0);
                let ymax = (c.iter().map(|s| s.spread).fold(0.0, f64::max) * 1.1).max(1.0);
                let x = move |d: usize| left + (w - left - right) * ((d as f64).log2() - 2.0) / 7.0;
                let y = move |v: f64| top + (h - top - bottom) * (1.0 - v / ymax);
                let theory: String = (0..=70).map(|i| { let d = 4f64 * 2f64.powf(i as f64 / 10.0); format!("{}{:.1},{:.1}", if i == 0 { "M" } else { "L" }, left + (w - left - right) * (d.log2() - 2.0) / 7.0, y(d.sqrt())) }).collect();
                let yticks: Vec<f64> = (0..=4).map(|k| ymax * k as f64 / 4.0).collect();
                view! {
                    <figure>
                        <svg class="sink-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label="spread of the raw scores q·k against d, with √d">
                            {yticks.iter().map(|&v| view! {
                                <line x1=left x2=w - right y1=y(v) y2=y(v) stroke="currentColor" stroke-opacity="0.12"/>
                                <text x=left - 4.0 y=y(v) + 4.0 font-size="11" text-anchor="end">{format!("{v:.0}")}</text>
                            }).collect_view()}
                            {c.iter().map(|s| view! { <text x=x(s.d) y=h - bottom + 14.0 font-size="11" text-anchor="middle">{s.d.to_string()}</text> }).collect_view()}
                            <line x1=left x2=left y1=top y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                            <line x1=left x2=w - right y1=h - bottom y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                            <text x=(left + w) / 2.0 y=h - 2.0 font-size="12" text-anchor="middle">"head width d (log scale)"</text>
                            <text transform=format!("translate(12 {}) rotate(-90)", (top + h - bottom) / 2.0) font-size="12" text-anchor="middle">"spread of q·k"</text>
                            <path d=theory fill="none" stroke="#e8590c" stroke-width="1.5" stroke-dasharray="5 3"/>
                            {c.iter().map(|s| view! {
                                <circle cx=x(s.d) cy=y(s.spread) r=if s.d == pick.d { "6" } else { "4" } fill="#4c6ef5">
                                    <title>{format!("d = {}: spread {:.2} (√d = {:.2}); ÷√d: {:.2}", s.d, s.spread, (s.d as f64).sqrt(), s.spread_scaled)}</title>
                                </circle>
                            }).collect_view()}
                            <line x1=left + 10.0 x2=left + 36.0 y1=top + 6.0 y2=top + 6.0 stroke="#e8590c" stroke-width="1.5" stroke-dasharray="5 3"/>
                            <text x=left + 42.0 y=top + 10.0 font-size="12">"√d"</text>
                            <circle cx=left + 110.0 cy=top + 6.0 r="4" fill="#4c6ef5"/>
                            <text x=left + 118.0 y=top + 10.0 font-size="12">{format!("measured, {} tokens", pick.n)}</text>
                        </svg>
                        <figcaption>{format!("The spread (root mean square) of q·k over {} random queries at each d, against √d; hover a point for its numbers.", trials_for(pick.n))}</figcaption>
                    </figure>
                    <table class="numbers scale-numbers">
                        <thead><tr><th>{format!("d = {}, {} tokens", pick.d, pick.n)}</th><th scope="col">"q·k as is"</th><th scope="col">"q·k ÷ √d"</th></tr></thead>
                        <tbody>
                            <tr><th scope="row">"spread of the scores"</th><td>{format!("{:.2}", pick.spread)}</td><td>{format!("{:.2}", pick.spread_scaled)}</td></tr>
                            <tr><th scope="row">"largest weight in a row (even: "{format!("{:.3}", 1.0 / pick.n as f64)}")"</th><td>{format!("{:.3}", pick.top_weight)}</td><td>{format!("{:.3}", pick.top_weight_scaled)}</td></tr>
                            <tr><th scope="row">"how much the weights still respond (softmax gradient)"</th><td>{format!("{:.3}", pick.gradient)}</td><td>{format!("{:.3}", pick.gradient_scaled)}</td></tr>
                        </tbody>
                    </table>
                }
            }}
        </section>
    }
}
