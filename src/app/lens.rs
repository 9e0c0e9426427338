//! "What each layer predicts": the logit lens of the current run — every layer's output read
//! through the model's final norm and unembedding. A grid (a row per layer, a column per
//! token) of the likeliest next token with its probability as colour, the top 5 on hover,
//! and for the chosen token a line of p(the model's final answer) by layer.

use std::collections::HashMap;

use leptos::prelude::*;

use crate::analysis::lens::Lens;

/// A lens with the texts of the tokens it names.
#[derive(Clone, Debug, PartialEq)]
pub struct LensView {
    pub lens: Lens,
    pub vocab: HashMap<u32, String>,
}

impl LensView {
    pub fn word(&self, id: u32) -> String {
        self.vocab.get(&id).cloned().unwrap_or_else(|| format!("#{id}"))
    }
    /// The sentence under the grid for column `i`: where the answer appears.
    pub fn finding(&self, i: usize) -> String {
        let l = &self.lens;
        let (pos, answer) = (l.positions[i], self.word(l.final_argmax[i]));
        let after = l.tokens.get(pos).cloned().unwrap_or_default();
        let last = l.layers.len() - 1;
        match l.first_top1[i] {
            Some(first) if first == l.settled_at[i] => format!("After “{after}” the model answers “{answer}”: it first becomes the likeliest token at layer {first} of {last} and stays so."),
            Some(first) => format!("After “{after}” the model answers “{answer}”: it first becomes the likeliest token at layer {first}, is overtaken, and stays the likeliest from layer {} of {last}.", l.settled_at[i]),
            None => format!("After “{after}” the model answers “{answer}”."),
        }
    }
}

/// An export with the lens added, once computed: the schema of `attnlab lens --json` under
/// "lens" (the page's and the widget's `exportJson()`).
pub fn with_lens(json: String, lens: Option<&LensView>) -> String {
    match (lens, serde_json::from_str::<serde_json::Value>(&json)) {
        (Some(lv), Ok(mut v)) => {
            v["lens"] = serde_json::to_value(&lv.lens).unwrap_or_default();
            v.to_string()
        }
        _ => json,
    }
}

/// Colour of a probability (light to dark blue; text turns white on dark cells).
fn cell_colour(p: f32) -> String {
    let t = p.clamp(0.0, 1.0).sqrt();
    let mix = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
    format!("rgb({},{},{})", mix(240.0, 25.0), mix(244.0, 70.0), mix(255.0, 170.0))
}

/// Shortened for a cell: at most 7 characters, spaces shown as ·.
fn short(s: &str) -> String {
    let s = s.replace(' ', "·").replace('\n', "⏎");
    if s.chars().count() > 7 { format!("{}…", s.chars().take(6).collect::<String>()) } else { s }
}

#[component]
pub fn LensPanel() -> impl IntoView {
    let p = expect_context::<super::state::Page>();
    let empty = Signal::derive(move || if p.run.with(|r| r.is_some()) { "Run a text to see what each layer predicts." } else { "Run a text first." });
    view! {
        <div class="panel lens" class:hidden=move || p.view.get() != super::View::Lens>
            <p class="muted">"Each layer adds to a vector for every token (the residual stream). Reading that vector through the model's last step — its final norm and its vocabulary — after each layer shows what the model would predict if it stopped there (the “logit lens”). Rows are layers, columns the tokens read; each cell is the likeliest next token at that layer, darker when surer."</p>
            <LensFigure lens=p.lens running=p.lens_running empty=empty/>
            <super::vectors::WordVectorsPanel/>
        </div>
    }
}

/// The lens figure — grid, hover, the chosen column's line and finding — for the page's tab
/// and `<attn-lab view="lens">`: `empty` is what shows before there is a lens.
#[component]
pub fn LensFigure(#[prop(into)] lens: Signal<Option<LensView>>, #[prop(into)] running: Signal<bool>, #[prop(into)] empty: Signal<&'static str>) -> impl IntoView {
    // The column whose line is drawn (default: the last).
    let chosen = RwSignal::new(None::<usize>);
    let hover = RwSignal::new(None::<(usize, usize)>);
    move || match (lens.get(), running.get()) {
        (_, true) => view! { <p class="muted" role="status">"Reading every layer through the vocabulary…"</p> }.into_any(),
        (None, false) => view! { <p class="muted">{move || empty.get()}</p> }.into_any(),
        (Some(lv), false) => grid(lv, chosen, hover).into_any(),
    }
}

fn grid(lv: LensView, chosen: RwSignal<Option<usize>>, hover: RwSignal<Option<(usize, usize)>>) -> impl IntoView {
    let l = &lv.lens;
    let (n_layer, cols) = (l.layers.len(), l.positions.len());
    let (cw, ch, left, top, bottom) = (58.0, 18.0, 54.0, 8.0, 64.0);
    let (w, h) = (left + cw * cols as f64 + 8.0, top + ch * n_layer as f64 + bottom);
    let y = move |layer: usize| top + ch * (n_layer - 1 - layer) as f64; // layer 0 at the bottom
    let cells = (0..n_layer)
        .flat_map(|layer| (0..cols).map(move |i| (layer, i)))
        .map(|(layer, i)| {
            let row = &l.layers[layer];
            let (id, prob) = (row.top_ids[i][0], row.top_probs[i][0]);
            let is_final = id == l.final_argmax[i];
            let text = short(&lv.word(id));
            let dark = prob > 0.35;
            let (x0, y0) = (left + cw * i as f64, y(layer));
            view! {
                <g class="lens-cell" data-layer=layer data-col=i on:mouseenter=move |_| hover.set(Some((layer, i))) on:click=move |_| chosen.set(Some(i))>
                    <rect x=x0 y=y0 width=cw - 1.0 height=ch - 1.0 fill=cell_colour(prob) stroke=if is_final { "#e8590c" } else { "none" } stroke-width="1.2"/>
                    <text x=x0 + cw / 2.0 y=y0 + ch - 5.0 font-size="10" text-anchor="middle" fill=if dark { "#fff" } else { "#111" }>{text}</text>
                </g>
            }
        })
        .collect_view();
    let col_labels = l.positions.iter().enumerate().map(|(i, &pos)| {
        let t = short(&l.tokens[pos]);
        let x0 = left + cw * (i as f64 + 0.5);
        view! { <text x=x0 y=top + ch * n_layer as f64 + 12.0 font-size="10" text-anchor="end" transform=format!("rotate(-40 {x0} {})", top + ch * n_layer as f64 + 12.0)>{t}</text> }
    }).collect_view();
    let row_labels = (0..n_layer).filter(|&layer| layer % 5 == 0 || layer == n_layer - 1).map(|layer| view! { <text x=left - 6.0 y=y(layer) + ch - 5.0 font-size="10" text-anchor="end">{layer.to_string()}</text> }).collect_view();
    let lv_hover = lv.clone();
    let tooltip = move || hover.get().map(|(layer, i)| {
        let l = &lv_hover.lens;
        let row = &l.layers[layer];
        let items = row.top_ids[i].iter().zip(&row.top_probs[i]).map(|(&id, &pr)| format!("“{}” {:.3}", lv_hover.word(id), pr)).collect::<Vec<_>>().join(", ");
        format!("Layer {layer}, after “{}”: {items}; the final answer “{}” has p = {:.3} here", l.tokens[l.positions[i]], lv_hover.word(l.final_argmax[i]), row.p_final_top1[i])
    });
    let lv_line = lv.clone();
    view! {
        <figure class="lens-grid">
            <div class="scroll-x">
                <svg viewBox=format!("0 0 {w} {h}") width=w height=h role="img" aria-label="Grid: the likeliest next token at every layer (rows) and token (columns)" on:mouseleave=move |_| hover.set(None)>
                    {cells}
                    {col_labels}
                    {row_labels}
                    <text transform=format!("translate(12 {}) rotate(-90)", top + ch * n_layer as f64 / 2.0) font-size="12" text-anchor="middle">"layer"</text>
                </svg>
            </div>
            <p class="lens-tip muted" aria-live="polite">{move || tooltip().unwrap_or_else(|| "Hover a cell for its five likeliest tokens; click a column to follow it below. An orange outline marks the model's final answer.".into())}</p>
            <figcaption>{format!("The likeliest next token after each layer ({} layers × {} tokens); colour = its probability (white 0, dark blue 1).", n_layer, cols)}</figcaption>
        </figure>
        {move || {
            let i = chosen.get().unwrap_or(cols - 1).min(cols - 1);
            view! {
                <p class="lens-finding">{lv_line.finding(i)}</p>
                {line(&lv_line, i)}
            }
        }}
    }
}

/// p(the final answer at column i) by layer.
fn line(lv: &LensView, i: usize) -> impl IntoView {
    let l = &lv.lens;
    let n = l.layers.len();
    let (w, h, left, bottom, top, right) = (560.0, 200.0, 52.0, 32.0, 16.0, 10.0);
    let x = move |layer: usize| left + (w - left - right) * layer as f64 / (n - 1).max(1) as f64;
    let y = move |p: f64| top + (h - top - bottom) * (1.0 - p);
    let ps: Vec<f64> = l.layers.iter().map(|r| r.p_final_top1[i] as f64).collect();
    let d = ps.iter().enumerate().map(|(k, &p)| format!("{}{:.1},{:.1}", if k == 0 { "M" } else { "L" }, x(k), y(p))).collect::<String>();
    let answer = lv.word(l.final_argmax[i]);
    let step = ((n - 1) as f64 / 6.0).ceil().max(1.0) as usize;
    view! {
        <figure class="lens-line">
            <svg class="sink-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label=format!("Line chart: probability of “{answer}” after each layer")>
                {[0.0, 0.25, 0.5, 0.75, 1.0].map(|v| view! {
                    <line x1=left x2=w - right y1=y(v) y2=y(v) stroke="currentColor" stroke-opacity="0.12"/>
                    <text x=left - 4.0 y=y(v) + 4.0 font-size="11" text-anchor="end">{format!("{v:.2}")}</text>
                }).collect_view()}
                {(0..n).step_by(step).map(|k| view! { <text x=x(k) y=h - bottom + 14.0 font-size="11" text-anchor="middle">{k.to_string()}</text> }).collect_view()}
                <line x1=left x2=left y1=top y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                <line x1=left x2=w - right y1=h - bottom y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                <text x=(left + w) / 2.0 y=h - 2.0 font-size="12" text-anchor="middle">"layer"</text>
                <text transform=format!("translate(12 {}) rotate(-90)", (top + h - bottom) / 2.0) font-size="12" text-anchor="middle">"probability"</text>
                <path d=d fill="none" stroke="#e8590c" stroke-width="2"/>
                {ps.iter().enumerate().map(|(k, &p)| view! { <circle cx=x(k) cy=y(p) r="3" fill="#e8590c"><title>{format!("layer {k}: p(“{answer}”) = {p:.3}")}</title></circle> }).collect_view()}
            </svg>
            <figcaption>{format!("The probability of the model's final answer “{answer}” after each layer, at “{}”.", l.tokens[l.positions[i]])}</figcaption>
        </figure>
    }
}
