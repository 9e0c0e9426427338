//! "How alike are the heads?": the Jensen–Shannon distance between every pair of heads' rows
//! on the current text, in cluster order (average linkage) so that heads doing the same thing
//! sit together as dark squares on the diagonal; hover names both heads; one sentence says
//! how many heads behave alike.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, ImageData};

use super::heatmap::ramp;
use super::state::Page;
use crate::analysis::heads::Similarity;

/// The JS distance's largest value, √ln 2: rows with nothing in common.
const MAX_JS: f32 = 0.832_554_6;
/// Canvas pixels per side (cells get ⌊SIDE / heads⌋ pixels each).
const SIDE: usize = 540;

fn draw(canvas: &web_sys::HtmlCanvasElement, s: &Similarity) {
    let n = s.order.len();
    if n == 0 {
        return;
    }
    let k = (SIDE / n).max(1);
    let side = n * k;
    canvas.set_width(side as u32);
    canvas.set_height(side as u32);
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    let mut px = vec![255u8; side * side * 4];
    for (i, &a) in s.order.iter().enumerate() {
        for (j, &b) in s.order.iter().enumerate() {
            let rgb = ramp(1.0 - (s.distance[a][b] / MAX_JS).clamp(0.0, 1.0));
            for y in i * k..(i + 1) * k {
                for x in j * k..(j + 1) * k {
                    px[(y * side + x) * 4..(y * side + x) * 4 + 3].copy_from_slice(&rgb);
                }
            }
        }
    }
    if let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&px), side as u32, side as u32) {
        let _ = ctx.put_image_data(&img, 0.0, 0.0);
    }
    // Each group is a run of the order (a subtree of the clustering): outline it.
    ctx.set_stroke_style_str("#e8590c");
    ctx.set_line_width(1.5);
    for g in &s.groups {
        let pos: Vec<usize> = g.iter().filter_map(|h| s.order.iter().position(|o| o == h)).collect();
        let (lo, hi) = (*pos.iter().min().unwrap_or(&0), *pos.iter().max().unwrap_or(&0));
        ctx.stroke_rect((lo * k) as f64, (lo * k) as f64, ((hi + 1 - lo) * k) as f64, ((hi + 1 - lo) * k) as f64);
    }
}

#[component]
pub fn SimilarityView() -> impl IntoView {
    let p = expect_context::<Page>();
    let canvas: NodeRef<html::Canvas> = NodeRef::new();
    let hover = RwSignal::new(None::<(usize, usize, f32)>);
    Effect::new(move |_| {
        super::heatmap::use_palette(Some(p.look));
        if let (Some(c), Some(s)) = (canvas.get(), p.similarity.get()) {
            draw(&c, &s);
        }
    });
    let n_head = move || p.model.with(|m| m.as_ref().map(|m| m.n_head).unwrap_or(1));
    let name = move |i: usize| crate::analysis::HeadId::key(i / n_head(), i % n_head());
    let on_move = move |ev: web_sys::MouseEvent| {
        let (Some(c), Some(s)) = (canvas.get_untracked(), p.similarity.get_untracked()) else { return };
        let n = s.order.len();
        let rect = c.get_bounding_client_rect();
        let (x, y) = ((ev.client_x() as f64 - rect.left()) / rect.width(), (ev.client_y() as f64 - rect.top()) / rect.height());
        let (i, j) = ((y * n as f64) as usize, (x * n as f64) as usize);
        hover.set((i < n && j < n).then(|| (s.order[i], s.order[j], s.distance[s.order[i]][s.order[j]])));
    };
    view! {
        <section class="similarity">
            <h3>"How alike are the heads?"</h3>
            <p class="muted">"For every pair of heads, the Jensen–Shannon distance between their attention rows on this text, averaged over the rows: 0 means they look at exactly the same tokens, 0.83 that they never look at the same token. Heads are ordered by hierarchical clustering (average linkage), so heads that behave alike form dark squares on the diagonal."</p>
            {move || match p.similarity.get() {
                None => view! {
                    <button class="run-similarity" on:click=move |_| p.request_similarity() disabled=move || p.run.get().is_none() || p.similarity_running.get()>
                        {move || if p.similarity_running.get() { "Comparing every pair of heads…".to_string() } else { format!("Compare every pair of heads ({} tokens)", p.run.with(|r| r.as_ref().map(|r| r.report.ids.len()).unwrap_or(0))) }}
                    </button>
                }.into_any(),
                Some(s) => view! {
                    <p class="alike-summary"><strong>{s.summary.clone()}</strong></p>
                    <ol class="alike-groups">
                        {s.groups.iter().take(6).map(|g| view! { <li>{format!("{} heads: ", g.len())}{g.iter().map(|&i| name(i)).collect::<Vec<_>>().join(" ")}</li> }).collect_view()}
                    </ol>
                }.into_any(),
            }}
            <figure class="similarity-figure" class:hidden=move || p.similarity.with(|s| s.is_none())>
                <canvas node_ref=canvas class="similarity-matrix" role="img" aria-label="JS distance between every pair of heads, in cluster order"
                    on:mousemove=on_move on:mouseleave=move |_| hover.set(None)></canvas>
                <figcaption>
                    <p class="hover-readout" aria-live="polite">{move || match hover.get() {
                        Some((a, b, d)) => format!("layer {} head {} ↔ layer {} head {}: JS distance {d:.4}", a / n_head(), a % n_head(), b / n_head(), b % n_head()),
                        None => "Hover a cell to name both heads.".to_string(),
                    }}</p>
                    <div class="legend">
                        <span>"alike 0"</span>
                        {move || { super::heatmap::use_palette(Some(p.look)); (0..=8).map(|k| { let [r, g, b] = ramp(1.0 - k as f32 / 8.0); view! { <span class="swatch" style=format!("background:rgb({r},{g},{b})")></span> } }).collect_view() }}
                        <span>"0.83 nothing in common"</span>
                    </div>
                    <p class="muted">{move || format!("Both axes: the {} heads in cluster order. Outlined: groups whose rows differ by less than {} on average.", p.similarity.with(|s| s.as_ref().map(|s| s.order.len()).unwrap_or(0)), crate::analysis::heads::ALIKE_BELOW)}</p>
                </figcaption>
            </figure>
        </section>
    }
}
