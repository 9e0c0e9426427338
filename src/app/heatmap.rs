//! The attention heatmap of one head on a canvas: queries down, keys across, the causal mask
//! greyed, token labels on both axes when they fit, the exact value on hover, a legend, and
//! click-to-zoom on block-pooled maps of long inputs.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

use crate::worker::protocol::{HeadMap, MASKED};

/// Canvas size in CSS pixels (the map area; labels sit around it).
pub const MAP_PX: f64 = 560.0;
/// Room for axis labels.
const LABEL_PX: f64 = 90.0;
/// Above this many cells per side, labels are replaced by token indices.
const MAX_LABELLED: usize = 48;

/// Colour ramp (dark blue → teal → yellow), perceptually ordered; `t` in [0, 1].
pub fn ramp(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [[247.0, 251.0, 255.0], [158.0, 202.0, 225.0], [49.0, 130.0, 189.0], [8.0, 81.0, 156.0], [8.0, 29.0, 88.0]];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f) as u8;
    [c(0), c(1), c(2)]
}

const MASK_RGB: [u8; 3] = [226, 228, 233];

/// What the pointer is over.
#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    pub text: String,
    pub x: f64,
    pub y: f64,
}

fn short(t: &str) -> String {
    let t = t.replace('\n', "⏎").replace('\t', "⇥");
    let s: String = t.chars().take(10).collect();
    if t.chars().count() > 10 {
        format!("{s}…")
    } else {
        s
    }
}

/// Draws `map` into `canvas` (map area plus labels).
fn draw(canvas: &HtmlCanvasElement, map: &HeadMap, tokens: &[String], query: Option<usize>, scale_max: f32) {
    let dpr = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).max(1.0);
    let total = MAP_PX + LABEL_PX;
    canvas.set_width((total * dpr) as u32);
    canvas.set_height((total * dpr) as u32);
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.set_fill_style_str("#ffffff");
    ctx.fill_rect(0.0, 0.0, total, total);

    // Cells into an ImageData, then scaled up without smoothing.
    let (sq, sk) = (map.side_q, map.side_k);
    let mut px = vec![0u8; sq * sk * 4];
    for (i, v) in map.values.iter().enumerate() {
        let rgb = if *v == MASKED { MASK_RGB } else { ramp(*v / scale_max.max(1e-9)) };
        px[i * 4..i * 4 + 3].copy_from_slice(&rgb);
        px[i * 4 + 3] = 255;
    }
    if let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&px), sk as u32, sq as u32) {
        let doc = web_sys::window().and_then(|w| w.document());
        if let Some(off) = doc.and_then(|d| d.create_element("canvas").ok()).and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok()) {
            off.set_width(sk as u32);
            off.set_height(sq as u32);
            if let Ok(Some(octx)) = off.get_context("2d") {
                let octx: CanvasRenderingContext2d = octx.unchecked_into();
                let _ = octx.put_image_data(&img, 0.0, 0.0);
                ctx.set_image_smoothing_enabled(false);
                let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(&off, LABEL_PX, LABEL_PX, MAP_PX, MAP_PX);
            }
        }
    }
    let (cw, ch) = (MAP_PX / sk as f64, MAP_PX / sq as f64);
    // The chosen query row.
    if let Some(q) = query {
        if q >= map.rows.0 && q < map.rows.1 {
            let r = ((q - map.rows.0) / map.block_q) as f64;
            ctx.set_stroke_style_str("#e8590c");
            ctx.set_line_width(2.0);
            ctx.stroke_rect(LABEL_PX, LABEL_PX + r * ch, MAP_PX, ch);
        }
    }
    // Labels: tokens when few, else token indices every few cells.
    ctx.set_fill_style_str("#1d2330");
    ctx.set_font("12px ui-monospace, monospace");
    let label = |cell: usize, start: usize, block: usize| -> String {
        let t0 = start + cell * block;
        if block == 1 {
            tokens.get(t0).map(|t| short(t)).unwrap_or_default()
        } else {
            format!("{t0}")
        }
    };
    let step_q = if sq <= MAX_LABELLED { 1 } else { sq.div_ceil(16) };
    for c in (0..sq).step_by(step_q) {
        ctx.set_text_align("right");
        let _ = ctx.fill_text(&label(c, map.rows.0, map.block_q), LABEL_PX - 4.0, LABEL_PX + (c as f64 + 0.5) * ch + 4.0);
    }
    let step_k = if sk <= MAX_LABELLED { 1 } else { sk.div_ceil(16) };
    for c in (0..sk).step_by(step_k) {
        ctx.save();
        let _ = ctx.translate(LABEL_PX + (c as f64 + 0.5) * cw + 4.0, LABEL_PX - 4.0);
        let _ = ctx.rotate(-std::f64::consts::FRAC_PI_2);
        ctx.set_text_align("left");
        let _ = ctx.fill_text(&label(c, map.cols.0, map.block_k), 0.0, 0.0);
        ctx.restore();
    }
    ctx.set_font("11px system-ui, sans-serif");
    ctx.set_text_align("left");
    ctx.set_fill_style_str("#5b6475");
    let _ = ctx.fill_text("query ↓  key →", 4.0, 14.0);
}

/// The heatmap of one head.
#[component]
pub fn Heatmap(
    /// The map to draw (exact or pooled, whole or a zoomed region).
    #[prop(into)]
    map: Signal<Option<HeadMap>>,
    /// Token texts of the run, for labels and hover.
    #[prop(into)]
    tokens: Signal<Vec<String>>,
    /// The chosen query row (outlined; clicking a row of an exact map sets it).
    query: RwSignal<Option<usize>>,
    /// Called with (rows, cols) token ranges to zoom into.
    on_zoom: Callback<((usize, usize), (usize, usize))>,
    /// The canvas, for PNG export.
    canvas_ref: NodeRef<html::Canvas>,
) -> impl IntoView {
    let (hover, set_hover) = signal(None::<Hover>);
    let scale_max = move || map.with(|m| m.as_ref().map(|m| m.values.iter().cloned().fold(0.0f32, f32::max)).unwrap_or(1.0)).max(1e-6);

    Effect::new(move |_| {
        let (Some(canvas), Some(m)) = (canvas_ref.get(), map.get()) else { return };
        draw(&canvas, &m, &tokens.get(), query.get(), scale_max());
    });

    // Which cell is under (x, y) in CSS pixels of the canvas.
    let cell_at = move |x: f64, y: f64| -> Option<(usize, usize, HeadMap)> {
        let m = map.get_untracked()?;
        let (mx, my) = (x - LABEL_PX, y - LABEL_PX);
        if mx < 0.0 || my < 0.0 || mx >= MAP_PX || my >= MAP_PX {
            return None;
        }
        let c = ((mx / MAP_PX) * m.side_k as f64) as usize;
        let r = ((my / MAP_PX) * m.side_q as f64) as usize;
        Some((r.min(m.side_q - 1), c.min(m.side_k - 1), m))
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let (x, y) = (ev.offset_x() as f64, ev.offset_y() as f64);
        let Some((r, c, m)) = cell_at(x, y) else { return set_hover.set(None) };
        let v = m.values[r * m.side_k + c];
        let toks = tokens.get_untracked();
        let q0 = m.rows.0 + r * m.block_q;
        let k0 = m.cols.0 + c * m.block_k;
        let text = if m.pooled() {
            let q1 = (q0 + m.block_q).min(m.rows.1) - 1;
            let k1 = (k0 + m.block_k).min(m.cols.1) - 1;
            if v == MASKED {
                format!("queries {q0}–{q1} → keys {k0}–{k1}: masked (future keys)")
            } else {
                format!("queries {q0}–{q1} → keys {k0}–{k1}: max {v:.6} (click to zoom)")
            }
        } else {
            let tq = toks.get(q0).map(|t| short(t)).unwrap_or_default();
            let tk = toks.get(k0).map(|t| short(t)).unwrap_or_default();
            if v == MASKED {
                format!("query {q0} “{tq}” → key {k0} “{tk}”: masked (a token cannot see the future)")
            } else {
                format!("query {q0} “{tq}” → key {k0} “{tk}”: {v:.6}")
            }
        };
        set_hover.set(Some(Hover { text, x, y }));
    };
    let on_click = move |ev: web_sys::MouseEvent| {
        let Some((r, c, m)) = cell_at(ev.offset_x() as f64, ev.offset_y() as f64) else { return };
        if m.pooled() {
            // Zoom to a window of up to 128 tokens per side around the clicked block.
            let centre_q = m.rows.0 + r * m.block_q + m.block_q / 2;
            let centre_k = m.cols.0 + c * m.block_k + m.block_k / 2;
            let win = |centre: usize| {
                let lo = centre.saturating_sub(64);
                let hi = (lo + 128).min(m.n_tokens);
                (hi.saturating_sub(128), hi)
            };
            on_zoom.run((win(centre_q), win(centre_k)));
        } else {
            query.set(Some(m.rows.0 + r));
        }
    };
    let legend = move || {
        let max = scale_max();
        (0..=10)
            .map(|i| {
                let t = i as f32 / 10.0;
                let [r, g, b] = ramp(t);
                view! { <span class="swatch" style=format!("background:rgb({r},{g},{b})") title=format!("{:.3}", t * max)></span> }
            })
            .collect_view()
    };
    view! {
        <div class="heatmap">
            <div class="canvas-wrap">
                <canvas
                    node_ref=canvas_ref
                    style=format!("width:{}px;height:{}px", MAP_PX + LABEL_PX, MAP_PX + LABEL_PX)
                    data-pooled=move || map.with(|m| m.as_ref().map(|m| m.pooled()).unwrap_or(false)).to_string()
                    role="img"
                    aria-label=move || map.with(|m| m.as_ref().map(|m| format!("attention map of layer {} head {}, {} tokens", m.layer, m.head, m.n_tokens)).unwrap_or_default())
                    on:mousemove=on_move
                    on:mouseleave=move |_| set_hover.set(None)
                    on:click=on_click
                ></canvas>
                {move || hover.get().map(|h| view! { <div class="tooltip" style=format!("left:{}px;top:{}px", h.x + 14.0, h.y + 14.0)>{h.text}</div> })}
            </div>
            <div class="legend" aria-label="colour scale">
                <span>"0"</span>{legend}<span>{move || format!("{:.3}", scale_max())}</span>
                <span class="swatch masked" title="masked: future keys"></span><span>"masked"</span>
            </div>
        </div>
    }
}
