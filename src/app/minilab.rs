//! The "From scratch" tab: attention on a toy vocabulary, every step a small labelled matrix
//! with the value on hover; edit the sentence or a weight, re-roll the seed, switch the mask
//! and two heads — everything updates at once (no model, no worker).

use leptos::prelude::*;

use super::state::Page;
use super::View;
use crate::analysis::minilab::{run, Lab, Mat, D, VOCAB};

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

#[component]
pub fn MiniLab() -> impl IntoView {
    let p = expect_context::<Page>();
    let lab = RwSignal::new(Lab::new(1));
    let tokens = RwSignal::new(vec![0usize, 1, 3, 4, 5]); // the cat sat on mat
    let causal = RwSignal::new(true);
    let heads = RwSignal::new(1usize);
    let steps = Memo::new(move |_| run(&lab.get(), &tokens.get(), causal.get(), heads.get()));
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
                <label><input type="checkbox" prop:checked=move || causal.get() on:change=move |ev| causal.set(event_target_checked(&ev))/>" causal mask"</label>
                <label><input type="checkbox" prop:checked=move || heads.get() == 2 on:change=move |ev| heads.set(if event_target_checked(&ev) { 2 } else { 1 })/>" 2 heads × 4 dims"</label>
                <button class="to-real-model" on:click=move |_| { p.view.set(View::Head); if p.run.with_untracked(|r| r.is_none()) { p.start_run() } else { p.request_head(None) } }>"The same steps on the real model →"</button>
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
                                <Matrix title="mask".to_string() caption="the future set to −∞" m=hs.masked.clone() rows=w.clone() cols=w.clone()/>
                                <Matrix title="softmax".to_string() caption="each row sums to 1" m=hs.probs.clone() rows=w.clone() cols=w.clone() prob=true/>
                                <Matrix title="· V".to_string() caption="the head's output" m=hs.out.clone() rows=w.clone() cols=dims(hs.dims.clone())/>
                            </div>
                        }
                    }).collect_view()}
                }
            }}
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
