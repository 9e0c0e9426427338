//! The attention heatmap of one head on a canvas: queries down, keys across, the causal mask
//! greyed, token labels on both axes when they fit, the exact value on hover, a legend, and
//! click-to-zoom on block-pooled maps of long inputs.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

use crate::analysis::explain::WhatIf;
use crate::worker::protocol::{HeadMap, MASKED};

pub use crate::analysis::colour::{ColourScale, Palette};

/// How the page shows maps (shared through context by the playground; widgets use the
/// defaults): the colour scale, the sink hidden, and a what-if.
#[derive(Clone, Copy)]
pub struct Look {
    pub colour: RwSignal<ColourScale>,
    /// The colours of the ramp (`?palette=` / `palette=`).
    pub palette: RwSignal<Palette>,
    pub hide_sink: RwSignal<bool>,
    pub what_if: RwSignal<WhatIf>,
}

/// A snapshot of [`Look`] for one drawing.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct MapStyle {
    pub colour: ColourScale,
    pub palette: Palette,
    pub hide_sink: bool,
    pub what_if: WhatIf,
}

impl MapStyle {
    /// The style checked settings ask for (`scale`, `palette`, `sink`, `whatif`; defaults for
    /// what they leave out).
    pub fn of(s: &crate::settings::Restore) -> MapStyle {
        MapStyle {
            colour: ColourScale::parse(s.get("scale").unwrap_or_default()),
            palette: s.get("palette").and_then(Palette::parse).unwrap_or_default(),
            hide_sink: s.get("sink") == Some("hide"),
            what_if: s.get("whatif").and_then(WhatIf::from_param).unwrap_or_default(),
        }
    }
}

impl Look {
    /// Signals holding the style checked settings ask for.
    pub fn of(s: &crate::settings::Restore) -> Look {
        let m = MapStyle::of(s);
        Look { colour: RwSignal::new(m.colour), palette: RwSignal::new(m.palette), hide_sink: RwSignal::new(m.hide_sink), what_if: RwSignal::new(m.what_if) }
    }

    /// Shows the style checked settings ask for.
    pub fn set_style(&self, s: &crate::settings::Restore) {
        let m = MapStyle::of(s);
        self.colour.set(m.colour);
        self.palette.set(m.palette);
        self.hide_sink.set(m.hide_sink);
        self.what_if.set(m.what_if);
    }

    pub fn style(&self) -> MapStyle {
        MapStyle { colour: self.colour.get(), palette: self.palette.get(), hide_sink: self.hide_sink.get(), what_if: self.what_if.get() }
    }
    pub fn style_untracked(&self) -> MapStyle {
        MapStyle { colour: self.colour.get_untracked(), palette: self.palette.get_untracked(), hide_sink: self.hide_sink.get_untracked(), what_if: self.what_if.get_untracked() }
    }
}

/// The palette of the nearest [`Look`] (tracked), made the one [`ramp`] draws with: call it
/// first in any closure or effect that colours cells, so a change of palette redraws it.
pub fn use_palette(look: Option<Look>) -> Palette {
    let p = look.map(|l| l.palette.get()).unwrap_or_default();
    crate::analysis::colour::set_palette(p);
    p
}

/// The style of the nearest [`Look`] in context, or the default (tracked).
pub fn current_style(look: Option<Look>) -> MapStyle {
    look.map(|l| l.style()).unwrap_or_default()
}

/// The legend's words for a style.
pub fn style_caption(s: MapStyle, pooled: bool) -> String {
    let mut out = String::from(if pooled { "attention (max over each block)" } else { "attention probability" });
    out.push_str(match s.colour {
        ColourScale::Linear => ", linear scale",
        ColourScale::Sqrt => ", √ scale",
        ColourScale::Log => ", log scale (3 decades)",
    });
    if s.hide_sink {
        out.push_str("; sink hidden: rows renormalised without key 0");
    }
    match s.what_if {
        WhatIf::None => {}
        WhatIf::Unscaled => out.push_str("; what-if: no ÷√d"),
        WhatIf::Unmasked => out.push_str("; what-if: no causal mask"),
        WhatIf::NoRope => out.push_str("; what-if: positions ignored (RoPE undone)"),
    }
    out
}

/// Canvas size in CSS pixels (the map area; labels sit around it).
pub const MAP_PX: f64 = 560.0;
/// Room for axis labels.
const LABEL_PX: f64 = 90.0;
/// Above this many cells per side, labels are replaced by token indices.
const MAX_LABELLED: usize = 48;

pub use crate::analysis::colour::ramp;

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

/// Room under the map for the colour bar and its ticks (drawn into the canvas, so a PNG
/// export carries its own legend).
const LEGEND_PX: f64 = 84.0;
/// Canvas size in CSS pixels.
pub const WIDTH_PX: f64 = MAP_PX + LABEL_PX;
pub const HEIGHT_PX: f64 = MAP_PX + LABEL_PX + LEGEND_PX;

/// A reader of a canvas's CSS properties (its theme): `get(property, default)`, the default
/// where the property is unset. Every figure drawn on a canvas takes its colours through it.
pub fn canvas_css(canvas: &HtmlCanvasElement) -> impl Fn(&str, &str) -> String {
    let style = web_sys::window().and_then(|w| w.get_computed_style(canvas).ok().flatten());
    move |k: &str, d: &str| style.as_ref().and_then(|s| s.get_property_value(k).ok()).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string())
}

/// Paper, ink, muted ink and masked-cell colours of the canvas, from its CSS
/// (`--attnlab-paper`, `color`, `--attnlab-muted`, `--attnlab-mask`), so the figure follows
/// the page's or widget's theme (dark included).
fn colours(canvas: &HtmlCanvasElement) -> Colours {
    let get = canvas_css(canvas);
    let mask = parse_hex(&get("--attnlab-mask", "")).unwrap_or(MASK_RGB);
    Colours { paper: get("--attnlab-paper", "#ffffff"), ink: get("color", "#1d2330"), muted: get("--attnlab-muted", "#5b6475"), mask }
}

/// The colours one drawing uses.
pub struct Colours {
    paper: String,
    ink: String,
    muted: String,
    mask: [u8; 3],
}

/// `#rrggbb` or `#rgb` as RGB.
fn parse_hex(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#')?;
    let v = |i: usize, n: usize| u8::from_str_radix(h.get(i..i + n)?, 16).ok();
    match h.len() {
        6 => Some([v(0, 2)?, v(2, 2)?, v(4, 2)?]),
        3 => Some([v(0, 1)? * 17, v(1, 1)? * 17, v(2, 1)? * 17]),
        _ => None,
    }
}

/// What to draw over the map.
#[derive(Clone, Copy, Default)]
struct Marks {
    query: Option<usize>,
    /// Keyboard focus cell (row, col) in map cells.
    focus: Option<(usize, usize)>,
    style: MapStyle,
}

/// Draws `map` into `canvas` at `scale` device pixels per CSS pixel (map, labels, colour bar).
fn draw(canvas: &HtmlCanvasElement, map: &HeadMap, tokens: &[String], marks: Marks, scale_max: f32, scale: f64, colours: &Colours) {
    let Colours { paper, ink, muted, mask } = colours;
    crate::analysis::colour::set_palette(marks.style.palette);
    canvas.set_width((WIDTH_PX * scale) as u32);
    canvas.set_height((HEIGHT_PX * scale) as u32);
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    let _ = ctx.set_transform(scale, 0.0, 0.0, scale, 0.0, 0.0);
    ctx.set_fill_style_str(paper);
    ctx.fill_rect(0.0, 0.0, WIDTH_PX, HEIGHT_PX);

    // Cells into an ImageData, then scaled up without smoothing.
    let (sq, sk) = (map.side_q, map.side_k);
    if sq == 0 || sk == 0 {
        return;
    }
    let mut px = vec![0u8; sq * sk * 4];
    for (i, v) in map.values.iter().enumerate() {
        let rgb = if *v == MASKED { *mask } else { ramp(marks.style.colour.t(*v, scale_max)) };
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
    // A sliding window's edge: keys left of the dashed line are older than the window (0).
    let band = map.window.filter(|&w| map.rows.1 > w + map.cols.0);
    if let Some(w) = band {
        ctx.save();
        ctx.begin_path();
        ctx.rect(LABEL_PX, LABEL_PX, MAP_PX, MAP_PX);
        ctx.clip();
        let at = |i: f64| (LABEL_PX + (i - w as f64 + 1.0 - map.cols.0 as f64) / map.block_k as f64 * cw, LABEL_PX + (i - map.rows.0 as f64) / map.block_q as f64 * ch);
        let (x0, y0) = at(map.rows.0 as f64);
        let (x1, y1) = at(map.rows.1 as f64);
        ctx.begin_path();
        let _ = ctx.set_line_dash(&js_sys::Array::of2(&6.0.into(), &4.0.into()));
        ctx.set_stroke_style_str("#0c8599");
        ctx.set_line_width(2.0);
        ctx.move_to(x0, y0);
        ctx.line_to(x1, y1);
        ctx.stroke();
        ctx.restore();
    }
    // The chosen query row.
    if let Some(q) = marks.query {
        if q >= map.rows.0 && q < map.rows.1 {
            let r = ((q - map.rows.0) / map.block_q) as f64;
            ctx.set_stroke_style_str("#e8590c");
            ctx.set_line_width(2.0);
            ctx.stroke_rect(LABEL_PX, LABEL_PX + r * ch, MAP_PX, ch);
        }
    }
    // The keyboard's focus cell.
    if let Some((r, c)) = marks.focus {
        ctx.set_stroke_style_str(ink);
        ctx.set_line_width(2.5);
        ctx.stroke_rect(LABEL_PX + c as f64 * cw, LABEL_PX + r as f64 * ch, cw.max(3.0), ch.max(3.0));
    }
    // Labels: tokens when few, else token indices every few cells.
    ctx.set_fill_style_str(ink);
    ctx.set_font("12px ui-monospace, monospace");
    let label = |cell: usize, start: usize, block: usize| -> String {
        let t0 = start + cell * block;
        if block == 1 && sq.max(sk) <= MAX_LABELLED {
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
    ctx.set_fill_style_str(muted);
    let _ = ctx.fill_text("query ↓  key →", 4.0, 14.0);

    // Colour bar with ticks, then the masked swatch.
    let (bx, by, bw, bh) = (LABEL_PX, LABEL_PX + MAP_PX + 10.0, 240.0, 10.0);
    for i in 0..bw as usize {
        let [r, g, b] = ramp(i as f32 / (bw as f32 - 1.0));
        ctx.set_fill_style_str(&format!("rgb({r},{g},{b})"));
        ctx.fill_rect(bx + i as f64, by, 1.0, bh);
    }
    ctx.set_stroke_style_str(muted);
    ctx.set_line_width(1.0);
    ctx.stroke_rect(bx, by, bw, bh);
    ctx.set_fill_style_str(ink);
    for k in 0..=4 {
        let x = bx + bw * k as f64 / 4.0;
        ctx.fill_rect(x - 0.5, by + bh, 1.0, 4.0);
        ctx.set_text_align(if k == 0 { "left" } else if k == 4 { "right" } else { "center" });
        let v = marks.style.colour.value_at(k as f32 / 4.0, scale_max);
        let _ = ctx.fill_text(&if v == 0.0 || v >= 0.01 { format!("{v:.2}") } else { format!("{v:.0e}") }, x, by + bh + 15.0);
    }
    ctx.set_text_align("left");
    // Right of the bar, one line per part of the caption (never cut: squeezed to fit), then the
    // masked swatch and the window edge.
    let (lx, room) = (bx + bw + 12.0, WIDTH_PX - (bx + bw + 12.0) - 4.0);
    let caption = style_caption(marks.style, map.pooled());
    let mut y = by + 9.0;
    for part in caption.split("; ") {
        let _ = ctx.fill_text_with_max_width(part, lx, y, room);
        y += 14.0;
    }
    let [r, g, b] = *mask;
    ctx.set_fill_style_str(&format!("rgb({r},{g},{b})"));
    ctx.fill_rect(lx, y - 8.0, 14.0, 10.0);
    ctx.set_stroke_style_str(muted);
    ctx.stroke_rect(lx, y - 8.0, 14.0, 10.0);
    ctx.set_fill_style_str(ink);
    let _ = ctx.fill_text_with_max_width("masked (future keys)", lx + 20.0, y + 1.0, room - 20.0);
    if let Some(w) = band {
        y += 14.0;
        ctx.set_fill_style_str("#0c8599");
        ctx.fill_rect(lx, y - 4.0, 14.0, 3.0);
        ctx.set_fill_style_str(ink);
        let _ = ctx.fill_text_with_max_width(&format!("sliding window edge: each query sees its last {w} keys"), lx + 20.0, y + 1.0, room - 20.0);
    }
}

/// The map drawn at 2× (print, projectors) with the canvas's colours, as a PNG data URL.
pub fn png_2x(canvas: &HtmlCanvasElement, map: &HeadMap, tokens: &[String], query: Option<usize>, style: MapStyle) -> Option<String> {
    let doc = web_sys::window()?.document()?;
    let off: HtmlCanvasElement = doc.create_element("canvas").ok()?.dyn_into().ok()?;
    let max = map.values.iter().cloned().fold(0.0f32, f32::max).max(1e-6);
    draw(&off, map, tokens, Marks { query, focus: None, style }, max, 2.0, &colours(canvas));
    off.to_data_url().ok()
}

/// A one-sentence summary of the map for screen readers: the strongest links and the mass
/// on the first token.
pub fn describe(map: &HeadMap, tokens: &[String]) -> String {
    let mut head = format!("Attention map of layer {} head {}, {} tokens", map.layer, map.head, map.n_tokens);
    if map.pooled() {
        head.push_str(&format!(", shown as {}×{} blocks", map.side_q, map.side_k));
    }
    let mut cells: Vec<(f32, usize, usize)> = Vec::new();
    for r in 0..map.side_q {
        for c in 0..map.side_k {
            let v = map.values[r * map.side_k + c];
            let (q, k) = (map.rows.0 + r * map.block_q, map.cols.0 + c * map.block_k);
            if v != MASKED && k != 0 && q != 0 {
                cells.push((v, q, k));
            }
        }
    }
    cells.sort_by(|a, b| b.0.total_cmp(&a.0));
    let name = |i: usize| if map.pooled() { format!("{i}") } else { format!("‘{}’", short(tokens.get(i).map(|s| s.as_str()).unwrap_or(""))) };
    let links: Vec<String> = cells.iter().take(3).map(|(v, q, k)| format!("{} → {}: {v:.2}", name(*q), name(*k))).collect();
    if !links.is_empty() {
        head.push_str(&format!(". Strongest links past the first token: {}", links.join("; ")));
    }
    if map.cols.0 == 0 && map.block_k == 1 && map.side_q > 1 {
        let col: Vec<f32> = (1..map.side_q).map(|r| map.values[r * map.side_k]).filter(|v| *v != MASKED).collect();
        if !col.is_empty() {
            head.push_str(&format!(". Mean attention on the first token: {:.2}", col.iter().sum::<f32>() / col.len() as f32));
        }
    }
    head.push('.');
    head
}

/// The text a cell reads as (hover and the keyboard's live region).
fn cell_text(m: &HeadMap, toks: &[String], r: usize, c: usize) -> String {
    let v = m.values[r * m.side_k + c];
    let q0 = m.rows.0 + r * m.block_q;
    let k0 = m.cols.0 + c * m.block_k;
    if m.pooled() {
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
            format!("query {q0} ‘{tq}’ → key {k0} ‘{tk}’: masked (a token cannot see the future)")
        } else {
            format!("query {q0} ‘{tq}’ → key {k0} ‘{tk}’: {v:.6}")
        }
    }
}

/// The heatmap of one head: hover or arrow keys read a cell's value, a click (or Enter)
/// picks the query row of an exact map or zooms into a pooled block, and a table toggle
/// shows the numbers.
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
    let focus = RwSignal::new(None::<(usize, usize)>);
    let (live, set_live) = signal(String::new());
    let table = RwSignal::new(false);
    let look = use_context::<Look>();
    let scale_max = move || map.with(|m| m.as_ref().map(|m| m.values.iter().cloned().fold(0.0f32, f32::max)).unwrap_or(1.0)).max(1e-6);

    Effect::new(move |_| {
        let (Some(canvas), Some(m)) = (canvas_ref.get(), map.get()) else { return };
        let dpr = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).max(1.0);
        let f = focus.get().filter(|(r, c)| *r < m.side_q && *c < m.side_k);
        draw(&canvas, &m, &tokens.get(), Marks { query: query.get(), focus: f, style: current_style(look) }, scale_max(), dpr, &colours(&canvas));
    });

    // Which cell is under (x, y), in CSS pixels of the canvas as shown (it shrinks on
    // narrow screens).
    let cell_at = move |x: f64, y: f64| -> Option<(usize, usize, HeadMap)> {
        let m = map.get_untracked()?;
        let shown = canvas_ref.get_untracked().map(|c| c.client_width() as f64).filter(|w| *w > 0.0).unwrap_or(WIDTH_PX);
        let k = WIDTH_PX / shown;
        let (mx, my) = (x * k - LABEL_PX, y * k - LABEL_PX);
        if mx < 0.0 || my < 0.0 || mx >= MAP_PX || my >= MAP_PX || m.side_q == 0 {
            return None;
        }
        let c = ((mx / MAP_PX) * m.side_k as f64) as usize;
        let r = ((my / MAP_PX) * m.side_q as f64) as usize;
        Some((r.min(m.side_q - 1), c.min(m.side_k - 1), m))
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let (x, y) = (ev.offset_x() as f64, ev.offset_y() as f64);
        let Some((r, c, m)) = cell_at(x, y) else { return set_hover.set(None) };
        let text = cell_text(&m, &tokens.get_untracked(), r, c);
        set_hover.set(Some(Hover { text, x, y }));
    };
    // A click or Enter on cell (r, c).
    let activate = move |r: usize, c: usize, m: HeadMap| {
        if m.pooled() {
            // Zoom to a window of up to 128 tokens per side around the block.
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
    let on_click = move |ev: web_sys::MouseEvent| {
        if let Some((r, c, m)) = cell_at(ev.offset_x() as f64, ev.offset_y() as f64) {
            activate(r, c, m);
        }
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let Some(m) = map.get_untracked() else { return };
        if m.side_q == 0 {
            return;
        }
        let (r, c) = focus.get_untracked().unwrap_or_else(|| {
            let q = query.get_untracked().filter(|q| *q >= m.rows.0 && *q < m.rows.1).map(|q| (q - m.rows.0) / m.block_q).unwrap_or(m.side_q - 1);
            (q, 0)
        });
        let (r, c) = (r.min(m.side_q - 1), c.min(m.side_k - 1));
        let next = match ev.key().as_str() {
            "ArrowUp" => (r.saturating_sub(1), c),
            "ArrowDown" => ((r + 1).min(m.side_q - 1), c),
            "ArrowLeft" => (r, c.saturating_sub(1)),
            "ArrowRight" => (r, (c + 1).min(m.side_k - 1)),
            "Home" => (r, 0),
            "End" => (r, m.side_k - 1),
            "Enter" | " " => {
                ev.prevent_default();
                activate(r, c, m);
                return;
            }
            _ => return,
        };
        ev.prevent_default();
        focus.set(Some(next));
        set_live.set(cell_text(&m, &tokens.get_untracked(), next.0, next.1));
    };
    let on_focus = move |_| {
        if focus.get_untracked().is_none() {
            if let Some(m) = map.get_untracked().filter(|m| m.side_q > 0) {
                let r = query.get_untracked().filter(|q| *q >= m.rows.0 && *q < m.rows.1).map(|q| (q - m.rows.0) / m.block_q).unwrap_or(m.side_q - 1);
                focus.set(Some((r, 0)));
                set_live.set(cell_text(&m, &tokens.get_untracked(), r, 0));
            }
        }
    };
    let numbers = move || {
        let m = map.get()?;
        let toks = tokens.get();
        if m.side_q > 64 || m.side_k > 64 {
            return Some(view! { <p class="muted">{format!("{}×{} cells are too many for a table: zoom into a region (click the map) or download the CSV.", m.side_q, m.side_k)}</p> }.into_any());
        }
        let label = |start: usize, block: usize, i: usize| {
            let t0 = start + i * block;
            if block == 1 { format!("{t0} {}", short(toks.get(t0).map(|s| s.as_str()).unwrap_or(""))) } else { format!("{t0}–{}", t0 + block - 1) }
        };
        let head = (0..m.side_k).map(|c| view! { <th scope="col">{label(m.cols.0, m.block_k, c)}</th> }).collect_view();
        let body = (0..m.side_q)
            .map(|r| {
                let cells = (0..m.side_k).map(|c| { let v = m.values[r * m.side_k + c]; view! { <td>{if v == MASKED { String::new() } else { format!("{v:.3}") }}</td> } }).collect_view();
                view! { <tr><th scope="row">{label(m.rows.0, m.block_q, r)}</th>{cells}</tr> }
            })
            .collect_view();
        Some(view! {
            <div class="table-wrap">
                <table class="numbers"><caption>{format!("Layer {} head {}: rows are queries, columns keys; empty cells are masked.", m.layer, m.head)}</caption>
                    <thead><tr><th scope="col">"query \\ key"</th>{head}</tr></thead><tbody>{body}</tbody></table>
            </div>
        }.into_any())
    };
    view! {
        <div class="heatmap">
            <div class="canvas-wrap">
                <canvas
                    node_ref=canvas_ref
                    tabindex="0"
                    style=format!("width:{WIDTH_PX}px;aspect-ratio:{WIDTH_PX}/{HEIGHT_PX}")
                    data-pooled=move || map.with(|m| m.as_ref().map(|m| m.pooled()).unwrap_or(false)).to_string()
                    role="img"
                    aria-roledescription="heatmap; arrow keys move between cells, Enter picks the query row"
                    aria-label=move || map.with(|m| m.as_ref().map(|m| describe(m, &tokens.get())).unwrap_or_default())
                    on:mousemove=on_move
                    on:mouseleave=move |_| set_hover.set(None)
                    on:click=on_click
                    on:keydown=on_key
                    on:focus=on_focus
                    on:blur=move |_| focus.set(None)
                ></canvas>
                {move || hover.get().map(|h| view! { <div class="tooltip" style=format!("left:{}px;top:{}px", h.x + 14.0, h.y + 14.0)>{h.text}</div> })}
            </div>
            <p class="live-cell" aria-live="polite">{move || live.get()}</p>
            <button class="table-toggle" aria-pressed=move || table.get().to_string() on:click=move |_| table.update(|t| *t = !*t)>
                {move || if table.get() { "Hide table" } else { "Table" }}
            </button>
            {move || table.get().then(numbers)}
        </div>
    }
}
