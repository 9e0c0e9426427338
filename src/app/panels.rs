//! The token strip, the model view (every head as a thumbnail) and the attention-sink panel.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

use super::heatmap::ramp;
use crate::worker::protocol::{HeadMap, MASKED};

/// Tokens as the model sees them; shaded by the chosen query's attention when one is chosen.
#[component]
pub fn TokenStrip(
    /// Token texts.
    #[prop(into)]
    tokens: Signal<Vec<String>>,
    /// The chosen query row.
    query: RwSignal<Option<usize>>,
    /// Attention of the chosen query over keys 0..=query (exact rows of the current head).
    #[prop(into)]
    row: Signal<Option<Vec<f32>>>,
) -> impl IntoView {
    let look = use_context::<super::heatmap::Look>();
    view! {
        <div class="tokens" role="listbox" aria-label="tokens: choose the query row">
            {move || {
                super::heatmap::use_palette(look);
                let r = row.get();
                let max = r.as_ref().map(|r| r.iter().cloned().fold(0.0f32, f32::max)).unwrap_or(1.0).max(1e-9);
                tokens.get().into_iter().enumerate().map(|(i, t)| {
                    let weight = r.as_ref().and_then(|r| r.get(i)).copied();
                    let style = weight.map(|w| { let [r, g, b] = ramp(w / max); let fg = if w / max > 0.5 { "#fff" } else { "#1d2330" }; format!("background:rgb({r},{g},{b});color:{fg}") }).unwrap_or_default();
                    let title = match weight { Some(w) => format!("token {i}: attention {w:.6}"), None => format!("token {i}") };
                    let shown = t.replace('\n', "⏎");
                    view! {
                        <button class="token" class:selected=move || query.get() == Some(i) style=style title=title
                            role="option" aria-selected=move || (query.get() == Some(i)).to_string()
                            on:click=move |_| query.set(Some(i))>{shown}</button>
                    }
                }).collect_view()
            }}
        </div>
    }
}

fn draw_thumb(canvas: &HtmlCanvasElement, m: &HeadMap, style: super::heatmap::MapStyle) {
    crate::analysis::colour::set_palette(style.palette);
    let colour = style.colour;
    canvas.set_width(m.side_k as u32);
    canvas.set_height(m.side_q as u32);
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    let max = m.values.iter().cloned().fold(0.0f32, f32::max).max(1e-9);
    let mut px = vec![0u8; m.values.len() * 4];
    for (i, v) in m.values.iter().enumerate() {
        let rgb = if *v == MASKED { [236, 238, 242] } else { ramp(colour.t(*v, max)) };
        px[i * 4..i * 4 + 3].copy_from_slice(&rgb);
        px[i * 4 + 3] = 255;
    }
    if let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&px), m.side_k as u32, m.side_q as u32) {
        let _ = ctx.put_image_data(&img, 0.0, 0.0);
    }
}

/// One query's row as bars (key 0 on the left), on an absolute 0–1 scale so heads compare;
/// the chosen key in orange.
fn draw_bars(canvas: &HtmlCanvasElement, row: &[f32], key: Option<usize>) {
    const SIDE: u32 = 48;
    canvas.set_width(SIDE);
    canvas.set_height(SIDE);
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    ctx.set_fill_style_str(&super::heatmap::canvas_css(canvas)("--attnlab-paper", "#ffffff"));
    ctx.fill_rect(0.0, 0.0, SIDE as f64, SIDE as f64);
    let n = row.len().max(1) as f64;
    let w = SIDE as f64 / n;
    for (j, p) in row.iter().enumerate() {
        let h = (*p as f64).clamp(0.0, 1.0) * SIDE as f64;
        ctx.set_fill_style_str(if Some(j) == key { "#e8590c" } else { "#4c6ef5" });
        ctx.fill_rect(j as f64 * w, SIDE as f64 - h, w.max(1.0) - if w > 3.0 { 1.0 } else { 0.0 }, h.max(if *p > 0.0 { 1.0 } else { 0.0 }));
    }
}

/// A head's pooled map drawn cell per pixel (CSS sizes it), in the page's colour scale.
#[component]
pub fn MapCanvas(map: HeadMap, #[prop(optional)] label: String) -> impl IntoView {
    let canvas: NodeRef<html::Canvas> = NodeRef::new();
    let look = use_context::<super::heatmap::Look>();
    Effect::new(move |_| {
        let style = super::heatmap::current_style(look);
        if let Some(c) = canvas.get() {
            draw_thumb(&c, &map, style);
        }
    });
    view! { <canvas class="map-canvas" node_ref=canvas role="img" aria-label=label></canvas> }
}

#[component]
fn Thumb(
    /// The pooled head map.
    map: HeadMap,
    /// Whether this head is the one open in the heatmap.
    #[prop(into)]
    selected: Signal<bool>,
    /// Opens this head.
    on_open: Callback<(usize, usize)>,
    /// Shift-click: picks the head for a knock-out.
    #[prop(optional)]
    on_pick: Option<Callback<(usize, usize)>>,
    /// Whether it is picked.
    #[prop(optional, into)]
    picked: Signal<bool>,
    /// Clicks pick rather than open.
    #[prop(optional, into)]
    pick_mode: Signal<bool>,
    /// The query's row in this head and the chosen key: drawn as bars instead of the map.
    #[prop(optional, into)]
    bars: Signal<Option<(Vec<f32>, Option<usize>)>>,
) -> impl IntoView {
    let canvas: NodeRef<html::Canvas> = NodeRef::new();
    let (layer, head) = (map.layer, map.head);
    let m = map.clone();
    let look = use_context::<super::heatmap::Look>();
    Effect::new(move |_| {
        let style = super::heatmap::current_style(look);
        let bars = bars.get();
        if let Some(c) = canvas.get() {
            match bars {
                Some((row, key)) => draw_bars(&c, &row, key),
                None => draw_thumb(&c, &m, style),
            }
        }
    });
    let title = move || {
        let value = bars.with(|b| b.as_ref().and_then(|(row, key)| key.and_then(|k| row.get(k)).map(|v| format!(": {v:.3} to the chosen key"))));
        let action = if pick_mode.get() { "click: pick for a knock-out" } else { "shift-click: pick for a knock-out" };
        format!("layer {layer}, head {head}{} ({action})", value.unwrap_or_default())
    };
    view! {
        <button class="thumb" class:selected=selected class:picked=picked title=title aria-label=move || format!("{} layer {layer} head {head}", if pick_mode.get() { "pick" } else { "open" })
            on:click=move |ev: web_sys::MouseEvent| match on_pick { Some(pick) if ev.shift_key() || pick_mode.get_untracked() => pick.run((layer, head)), _ => on_open.run((layer, head)) }>
            <canvas node_ref=canvas></canvas>
        </button>
    }
}

/// Every head of the model as a thumbnail, a row per layer, query heads grouped under the
/// KV head they share (GQA).
#[component]
pub fn ModelView(
    /// Pooled maps of every head, layer-major.
    #[prop(into)]
    thumbs: Signal<Option<Vec<HeadMap>>>,
    /// Query heads per layer and KV heads per layer.
    n_head: usize,
    n_kv_head: usize,
    /// Per layer: the sliding window (`None`: global). Empty for models without windows.
    #[prop(optional)]
    layer_window: Vec<Option<usize>>,
    /// The open head.
    #[prop(into)]
    current: Signal<(usize, usize)>,
    on_open: Callback<(usize, usize)>,
    /// Shift-click picks heads for a knock-out.
    #[prop(optional)]
    on_pick: Option<Callback<(usize, usize)>>,
    /// The picked heads.
    #[prop(optional, into)]
    picked: Signal<Vec<(usize, usize)>>,
    /// Clicks pick rather than open.
    #[prop(optional, into)]
    pick_mode: Signal<bool>,
    /// Bars instead of maps: the query's row in every head (layer-major) and the chosen key.
    #[prop(optional, into)]
    bars: Signal<Option<(Vec<Vec<f32>>, Option<usize>)>>,
) -> impl IntoView {
    let group = (n_head / n_kv_head.max(1)).max(1);
    view! {
        <div class="model-view">
            <p class="muted">{format!("Each row is a layer; each box holds the {group} query heads that share one key/value head. Click a head to open it.")}</p>
            <p class="muted compare">{if n_kv_head == 1 {
                "Multi-query attention (MQA): every query head of a layer reads the same keys and values, so the cache per token is one head wide. Their maps can still differ: each head asks its own question (its own queries). Compare with SmolLM2, where 9 query heads share 3 key/value heads (grouped-query attention, GQA), or with classic multi-head attention, where every head has its own keys and values.".to_string()
            } else if n_kv_head == n_head {
                "Multi-head attention: every head has its own keys and values.".to_string()
            } else {
                format!("Grouped-query attention (GQA): {n_head} query heads share {n_kv_head} key/value heads, {group} per group; heads in one box read the same keys. Gemma 3 270M goes further: one key/value head for all 4 query heads (multi-query attention, MQA).")
            }}</p>
            {move || match thumbs.get() {
                None => view! { <p class="muted">"Computing thumbnails…"</p> }.into_any(),
                Some(all) => {
                    let layer_window = layer_window.clone();
                    let layers = all.len() / n_head.max(1);
                    (0..layers).map(|l| {
                        let groups = (0..n_kv_head).map(|g| {
                            let heads = (0..group).map(|k| {
                                let h = g * group + k;
                                let m = all[l * n_head + h].clone();
                                let row = Signal::derive(move || bars.with(|b| b.as_ref().and_then(|(rows, key)| rows.get(l * n_head + h).map(|r| (r.clone(), *key)))));
                                view! { <Thumb map=m selected=Signal::derive(move || current.get() == (l, h)) on_open=on_open on_pick=on_pick.unwrap_or(Callback::new(|_| ())) picked=Signal::derive(move || picked.with(|p| p.contains(&(l, h)))) pick_mode=pick_mode bars=row/> }
                            }).collect_view();
                            view! { <div class="kv-group" title=format!("KV head {g}")>{heads}</div> }
                        }).collect_view();
                        let kind = match layer_window.get(l).copied().flatten() {
                            Some(w) => format!("local: the last {w} keys"),
                            None if layer_window.iter().any(|w| w.is_some()) => "global: every key".to_string(),
                            None => String::new(),
                        };
                        let tag = match layer_window.get(l).copied().flatten() {
                            Some(_) => "",
                            None if layer_window.iter().any(|w| w.is_some()) => " · global",
                            None => "",
                        };
                        view! { <div class="layer-row" title=kind><span class="layer-label">{format!("L{l}{tag}")}</span>{groups}</div> }
                    }).collect_view().into_any()
                }
            }}
        </div>
    }
}

/// The CSS gradient of the colour ramp (legends drawn in HTML).
fn ramp_gradient() -> String {
    let stops: Vec<String> = (0..=8).map(|i| { let [r, g, b] = ramp(i as f32 / 8.0); format!("rgb({r},{g},{b})") }).collect();
    format!("background:linear-gradient(to right,{})", stops.join(","))
}

/// Sink mass as a layer × head heatmap, and per layer against the uniform baseline.
#[component]
pub fn SinkPanel(
    /// `[layer][head]` mass on key 0.
    #[prop(into)]
    sink: Signal<Vec<Vec<Option<f32>>>>,
    /// Mean over heads, per layer.
    #[prop(into)]
    per_layer: Signal<Vec<f32>>,
    /// Mean over rows 1..n−1 of 1/(i+1).
    #[prop(into)]
    baseline: Signal<f32>,
    on_open: Callback<(usize, usize)>,
) -> impl IntoView {
    let chart = move || {
        let v = per_layer.get();
        let b = baseline.get();
        // Plot area inside margins for the axes' ticks and titles, and a legend on top.
        let (w, h) = (600.0, 250.0);
        let (left, right, top, bottom) = (58.0, 12.0, 40.0, 40.0);
        let n = v.len().max(2);
        let x = move |i: usize| left + i as f64 * (w - left - right) / (n - 1) as f64;
        let y = move |m: f32| h - bottom - m as f64 * (h - top - bottom);
        let line: String = v.iter().enumerate().map(|(i, m)| format!("{:.1},{:.1}", x(i), y(*m))).collect::<Vec<_>>().join(" ");
        let dots = v.iter().enumerate().map(|(i, m)| view! { <circle cx=x(i) cy=y(*m) r="3.5" fill="#4c6ef5"><title>{format!("layer {i}: {m:.3} (mean over its heads)")}</title></circle> }).collect_view();
        let y_ticks = [0.0f32, 0.25, 0.5, 0.75, 1.0].into_iter().map(|t| view! {
            <line x1=left x2=w - right y1=y(t) y2=y(t) stroke="currentColor" stroke-opacity="0.18"/>
            <text x=left - 6.0 y=y(t) + 4.0 font-size="11" text-anchor="end">{format!("{t:.2}")}</text>
        }).collect_view();
        // A tick per layer; labels every 1, 2 or 5 layers so they never overlap.
        let every = if v.len() <= 12 { 1 } else if v.len() <= 30 { 2 } else { 5 };
        let x_ticks = (0..v.len()).map(|i| view! {
            <line x1=x(i) x2=x(i) y1=h - bottom y2=h - bottom + 4.0 stroke="currentColor" stroke-opacity="0.6"/>
            {(i % every == 0).then(|| view! { <text x=x(i) y=h - bottom + 16.0 font-size="11" text-anchor="middle">{i}</text> })}
        }).collect_view();
        view! {
            <svg class="sink-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label=format!("Line chart: share of attention on the first token, mean over heads, for each of {} layers, against the even-spread baseline {b:.3}", v.len())>
                {y_ticks}
                <line x1=left x2=w - right y1=h - bottom y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                <line x1=left x2=left y1=top y2=h - bottom stroke="currentColor" stroke-opacity="0.6"/>
                {x_ticks}
                <text x=(left + w - right) / 2.0 y=h - 4.0 font-size="12" text-anchor="middle">"layer"</text>
                <text transform=format!("translate(14 {}) rotate(-90)", (top + h - bottom) / 2.0) font-size="12" text-anchor="middle">"attention on token 0"</text>
                <line x1=left x2=w - right y1=y(b) y2=y(b) stroke="#e8590c" stroke-width="1.5" stroke-dasharray="5 3"/>
                <polyline points=line fill="none" stroke="#4c6ef5" stroke-width="2"/>
                {dots}
                // Legend.
                <line x1=left x2=left + 26.0 y1="14" y2="14" stroke="#4c6ef5" stroke-width="2"/>
                <rect x=left + 10.0 y="11" width="7" height="7" rx="3.5" fill="#4c6ef5"/>
                <text x=left + 32.0 y="18" font-size="12">"mean over the heads of each layer"</text>
                <line x1=left x2=left + 26.0 y1="30" y2="30" stroke="#e8590c" stroke-width="1.5" stroke-dasharray="5 3"/>
                <text x=left + 32.0 y="34" font-size="12">{format!("an even spread over the earlier tokens: {b:.3}")}</text>
            </svg>
        }
    };
    let n_heads = move || sink.with(|s| s.first().map(|h| h.len()).unwrap_or(0));
    let look = use_context::<super::heatmap::Look>();
    view! {
        <div class="sink-panel">
            <p class="muted">"How much of each query's attention lands on the very first token (mean over query positions 1…n−1). A head that spread its attention evenly would give it the dashed baseline; far above it is an attention sink."</p>
            {chart}
            <h4 class="sink-grid-title">"Every head: share of attention on token 0 (click a head to open it)"</h4>
            <div class="sink-legend" aria-hidden="true"><span>"0"</span><span class="ramp" style=move || { super::heatmap::use_palette(look); ramp_gradient() }></span><span>"1 (all of it)"</span></div>
            <div class="sink-grid" role="grid" aria-label="sink mass by layer and head">
                <div class="sink-row sink-head-row" role="row">
                    <span class="layer-label">"layer \\ head"</span>
                    {move || (0..n_heads()).map(|h| view! { <span class="sink-col" role="columnheader">{format!("H{h}")}</span> }).collect_view()}
                </div>
                {move || { super::heatmap::use_palette(look); sink.get() }.into_iter().enumerate().map(|(l, heads)| {
                    let cells = heads.into_iter().enumerate().map(|(h, m)| {
                        let v = m.unwrap_or(0.0);
                        let [r, g, b] = ramp(v);
                        let fg = if v > 0.5 { "#fff" } else { "#1d2330" };
                        view! { <button class="sink-cell" style=format!("background:rgb({r},{g},{b});color:{fg}") title=format!("layer {l}, head {h}: {v:.4}")
                            on:click=move |_| on_open.run((l, h))>{format!("{:.2}", v)}</button> }
                    }).collect_view();
                    view! { <div class="sink-row" role="row"><span class="layer-label">{format!("L{l}")}</span>{cells}</div> }
                }).collect_view()}
            </div>
        </div>
    }
}
