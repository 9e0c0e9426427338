//! "Cost of attention": attention alone timed against n on the reader's own backend (the CPU,
//! and with WebGPU the flash and naive kernels), time and scratch memory on log-log axes with
//! fitted slopes, the forward pass split into linear layers vs attention by FLOPs, and a
//! KV-cache calculator for real architectures. Progress and cancel; CSV and PNG exports.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::CanvasRenderingContext2d;

use super::state::Page;
use crate::analysis::cost::{attention_dominates_at, forward_flops, known_archs, log_log_slope, CostRow, KvArch};
use crate::worker::protocol::Request;

const KERNELS: [(&str, &str, &str); 3] = [("cpu", "CPU (this tab's worker)", "#2f9e44"), ("flash", "GPU flash kernel", "#1c7ed6"), ("naive", "GPU naive kernel", "#e8590c")];
const W: f64 = 460.0;
const H: f64 = 300.0;
const PAD: (f64, f64, f64, f64) = (58.0, 16.0, 18.0, 40.0); // left, right, top, bottom

/// The sweep's rows as CSV (`n,kernel,ms,scratch_bytes`).
pub fn cost_csv(rows: &[CostRow]) -> String {
    let mut out = String::from("n,kernel,ms,scratch_bytes\n");
    for r in rows {
        out.push_str(&format!("{},{},{},{}\n", r.n, r.kernel, r.ms, r.scratch_bytes));
    }
    out
}

fn series(rows: &[CostRow], f: fn(&CostRow) -> f64) -> Vec<(&'static str, &'static str, &'static str, Vec<(f64, f64)>)> {
    KERNELS.iter().map(|(k, label, colour)| (*k, *label, *colour, rows.iter().filter(|r| r.kernel == *k).map(|r| (r.n as f64, f(r))).collect::<Vec<_>>())).filter(|s| !s.3.is_empty()).collect()
}

/// Paper, ink and grid colours from the canvas's CSS (the page's theme).
fn theme_colours(canvas: &web_sys::HtmlCanvasElement) -> (String, String, String) {
    let get = super::heatmap::canvas_css(canvas);
    (get("--attnlab-paper", "#ffffff"), get("color", "#1d2330"), get("--attnlab-mask", "#ccccdd"))
}

/// A log-log plot: x in powers of two, y in decades; each series with markers.
fn draw(canvas: &web_sys::HtmlCanvasElement, all: &[(&str, &str, &str, Vec<(f64, f64)>)], y_label: &str, fmt: fn(f64) -> String) {
    let dpr = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).max(1.0);
    canvas.set_width((W * dpr) as u32);
    canvas.set_height((H * dpr) as u32);
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    let _ = ctx.scale(dpr, dpr);
    let (paper, ink, grid) = theme_colours(canvas);
    ctx.set_fill_style_str(&paper);
    ctx.fill_rect(0.0, 0.0, W, H);
    let pts: Vec<(f64, f64)> = all.iter().flat_map(|s| s.3.iter().copied()).filter(|p| p.0 > 0.0 && p.1 > 0.0).collect();
    if pts.is_empty() {
        return;
    }
    let (x0, x1) = (pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min).log2(), pts.iter().map(|p| p.0).fold(0.0, f64::max).log2().max(pts[0].0.log2() + 1.0));
    let (y0, y1) = (pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).log10().floor(), pts.iter().map(|p| p.1).fold(0.0, f64::max).log10().ceil().max(1.0 + pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).log10().floor()));
    let sx = move |x: f64| PAD.0 + (x.log2() - x0) / (x1 - x0) * (W - PAD.0 - PAD.1);
    let sy = move |y: f64| H - PAD.3 - (y.log10() - y0) / (y1 - y0) * (H - PAD.2 - PAD.3);
    ctx.set_stroke_style_str(&grid);
    ctx.set_fill_style_str(&ink);
    ctx.set_font("11px sans-serif");
    ctx.set_line_width(1.0);
    let mut e = x0.round() as i32;
    while e as f64 <= x1 + 1e-9 {
        let x = sx(2f64.powi(e));
        ctx.begin_path();
        ctx.move_to(x, PAD.2);
        ctx.line_to(x, H - PAD.3);
        ctx.stroke();
        let _ = ctx.fill_text(&format!("{}", 1u64 << e.max(0)), x - 12.0, H - PAD.3 + 14.0);
        e += 1;
    }
    for d in y0 as i32..=y1 as i32 {
        let y = sy(10f64.powi(d));
        ctx.begin_path();
        ctx.move_to(PAD.0, y);
        ctx.line_to(W - PAD.1, y);
        ctx.stroke();
        let _ = ctx.fill_text(&fmt(10f64.powi(d)), 2.0, y + 4.0);
    }
    let _ = ctx.fill_text("sequence length n (tokens, log scale)", PAD.0 + 80.0, H - 6.0);
    let _ = ctx.fill_text(y_label, PAD.0 + 4.0, PAD.2 - 4.0);
    for (_, _, colour, s) in all {
        ctx.set_stroke_style_str(colour);
        ctx.set_fill_style_str(colour);
        ctx.set_line_width(2.0);
        ctx.begin_path();
        for (i, (x, y)) in s.iter().enumerate() {
            if i == 0 {
                ctx.move_to(sx(*x), sy(*y));
            } else {
                ctx.line_to(sx(*x), sy(*y));
            }
        }
        ctx.stroke();
        for (x, y) in s {
            ctx.begin_path();
            let _ = ctx.arc(sx(*x), sy(*y), 3.0, 0.0, std::f64::consts::TAU);
            ctx.fill();
        }
    }
}

fn ms(v: f64) -> String {
    if v >= 1000.0 { format!("{} s", v / 1000.0) } else if v >= 1.0 { format!("{v} ms") } else { format!("{v:.0e} ms") }
}

pub fn bytes(v: f64) -> String {
    match v {
        v if v >= (1u64 << 30) as f64 => format!("{:.1} GiB", v / (1u64 << 30) as f64),
        v if v >= (1u64 << 20) as f64 => format!("{:.1} MiB", v / (1u64 << 20) as f64),
        v if v >= 1024.0 => format!("{:.0} KiB", v / 1024.0),
        v => format!("{v:.0} B"),
    }
}

/// A plot with its legend (slopes) and a hover readout of the nearest point.
#[component]
fn LogLog(rows: Signal<Vec<CostRow>>, what: &'static str, pick: fn(&CostRow) -> f64, fmt: fn(f64) -> String, canvas: NodeRef<html::Canvas>) -> impl IntoView {
    let hover = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(c) = canvas.get() {
            draw(&c, &series(&rows.get(), pick), what, fmt);
        }
    });
    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(c) = canvas.get_untracked() else { return };
        let r = c.get_bounding_client_rect();
        let x = (ev.client_x() as f64 - r.left()) / r.width() * W;
        let rows = rows.get_untracked();
        let ns: Vec<usize> = rows.iter().map(|r| r.n).collect();
        let (lo, hi) = (ns.iter().min().copied().unwrap_or(128) as f64, ns.iter().max().copied().unwrap_or(256) as f64);
        let t = ((x - PAD.0) / (W - PAD.0 - PAD.1)).clamp(0.0, 1.0);
        let n = 2f64.powf(lo.log2() + t * (hi.log2() - lo.log2()).max(1.0));
        let near = ns.iter().copied().min_by(|a, b| ((*a as f64).ln() - n.ln()).abs().total_cmp(&((*b as f64).ln() - n.ln()).abs()));
        hover.set(near.map(|n| format!("n = {n}: {}", rows.iter().filter(|r| r.n == n).map(|r| format!("{} {}", r.kernel, fmt(pick(r)))).collect::<Vec<_>>().join(" · "))).unwrap_or_default());
    };
    view! {
        <figure class="cost-plot">
            <canvas node_ref=canvas role="img" aria-label=format!("{what} against sequence length, log-log") style=format!("width:{W}px;height:{H}px") on:mousemove=on_move on:mouseleave=move |_| hover.set(String::new())></canvas>
            <figcaption>
                <div class="legend">{move || series(&rows.get(), pick).into_iter().map(|(_, label, colour, pts)| {
                    let slope = log_log_slope(&pts).map(|s| format!(" — slope {s:.2}")).unwrap_or_default();
                    view! { <span class="swatch" style=format!("background:{colour}")></span><span>{format!("{label}{slope}")}</span> }
                }).collect_view()}</div>
                <p class="hover-readout" aria-live="polite">{move || { let h = hover.get(); if h.is_empty() { "Hover the plot for values.".to_string() } else { h } }}</p>
            </figcaption>
        </figure>
    }
}

/// FLOPs of the loaded model's forward pass: linear layers vs attention as n grows.
#[component]
fn FlopSplit() -> impl IntoView {
    let p = expect_context::<Page>();
    move || p.model.get().and_then(|m| m.dims.clone().map(|d| {
        let at = attention_dominates_at(&d);
        let name = m.display_name.clone();
        view! {
            <h4>"Linear layers vs attention in one forward pass"</h4>
            <table class="flop-split">
                <thead><tr><th scope="col">"n"</th><th scope="col">"linear layers"</th><th scope="col">"attention"</th><th scope="col">"attention share"</th></tr></thead>
                <tbody>{(7..=15).map(|e| 1usize << e).map(|n| {
                    let (lin, att) = forward_flops(&d, n);
                    let share = att / (lin + att);
                    view! { <tr><td>{n}</td><td>{format!("{:.1} GFLOP", lin / 1e9)}</td><td>{format!("{:.1} GFLOP", att / 1e9)}</td><td><span class="bar after" style=format!("width:{:.0}px", 100.0 * share)></span>{format!(" {:.0}%", 100.0 * share)}</td></tr> }
                }).collect_view()}</tbody>
            </table>
            <p>{match at {
                Some(n) => format!("For {name}, attention needs more arithmetic than all the linear layers together from n = {n} tokens on (counted FLOPs: 2 per weight per token for the linear layers; q·k and p·v over the causal triangle for attention). Below that, the weights dominate: attention's n² is real, but it starts small."),
                None => format!("For {name}, attention never overtakes the linear layers up to 16 million tokens."),
            }}</p>
        }
    }))
}

/// The KV cache of real architectures and the loaded model at a context length.
#[component]
fn KvCalculator() -> impl IntoView {
    let p = expect_context::<Page>();
    let context = RwSignal::new(8192usize);
    let width = RwSignal::new(2usize);
    let archs = move || {
        let mut a = known_archs();
        if let Some(d) = p.model.with(|m| m.as_ref().and_then(|m| m.dims.clone().map(|d| (m.display_name.clone(), d)))) {
            a.push(KvArch::from_dims(&format!("{} (loaded)", d.0), &d.1));
        }
        a
    };
    view! {
        <h4>"KV cache calculator"</h4>
        <p class="muted">"Generating text keeps every earlier token's keys and values: 2 × layers × KV heads × head size values per token. Grouped-query (GQA) and multi-query (MQA) attention shrink it by sharing key/value heads."</p>
        <p class="muted">"Two more savings: a local (sliding-window) layer keeps only its window's last tokens, so past the window only the global layers grow; multi-head latent attention (MLA) caches one compressed vector per token and layer (plus a small RoPE key) instead of keys and values for every head."</p>
        <div class="kv-controls">
            <label>"context length "<input type="number" min="1" max="10000000" prop:value=move || context.get() on:change=move |ev| context.set(event_target_value(&ev).parse().unwrap_or(8192).clamp(1, 10_000_000))/></label>
            <label>" value type "<select on:change=move |ev| width.set(event_target_value(&ev).parse().unwrap_or(2))>
                <option value="2" selected>"f16 / bf16 (2 bytes)"</option><option value="4">"f32 (4 bytes)"</option><option value="1">"8-bit (1 byte)"</option>
            </select></label>
        </div>
        <table class="kv-table">
            <thead><tr><th scope="col">"model"</th><th scope="col">"attention"</th><th scope="col">"layers × KV heads × head size"</th><th scope="col">"per token"</th><th scope="col">"at this context"</th><th scope="col">"source"</th></tr></thead>
            <tbody>{move || {
                let (ctx_len, w) = (context.get(), width.get());
                let all = archs();
                let max = all.iter().map(|a| a.bytes_at(ctx_len, w)).max().unwrap_or(1).max(1) as f64;
                all.into_iter().map(|a| {
                    let (per, at, without) = (a.bytes_per_token(w) as f64, a.bytes_at(ctx_len, w) as f64, a.bytes_at_without_windows(ctx_len, w) as f64);
                    let (local, windows) = a.local_layers();
                    let heads = match a.mla {
                        Some(_) => format!("{} ({} query heads, one shared latent)", a.kind, a.n_head),
                        None => format!("{} ({} query heads, {} KV)", a.kind, a.n_head, a.n_kv_head),
                    };
                    let mut shape = match a.mla {
                        Some((latent, rope)) => format!("{} × ({latent} latent + {rope} RoPE key)", a.n_layer),
                        None => format!("{} × {} × {}", a.n_layer, a.n_kv_head, a.head_dim),
                    };
                    if local > 0 {
                        let ws = windows.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("/");
                        shape.push_str(&format!("; {local} local (window {ws}), {} global", a.n_layer - local));
                    }
                    let saved = if at < without { format!(" (not {}: local layers stop at their window)", bytes(without)) } else { String::new() };
                    view! { <tr>
                        <td title=a.source.clone()>{a.name.clone()}</td><td>{heads}</td>
                        <td>{shape}</td><td>{bytes(per)}</td>
                        <td><span class="bar before" style=format!("width:{:.0}px", 120.0 * at / max)></span>{format!(" {}{saved}", bytes(at))}</td>
                        <td><small class="muted">{a.source.clone()}</small></td>
                    </tr> }
                }).collect_view()
            }}</tbody>
        </table>
    }
}

#[component]
pub fn CostView() -> impl IntoView {
    let p = expect_context::<Page>();
    let max_n = RwSignal::new(2048usize);
    let (c_time, c_mem): (NodeRef<html::Canvas>, NodeRef<html::Canvas>) = (NodeRef::new(), NodeRef::new());
    let rows = Signal::derive(move || p.cost.with(|c| c.as_ref().map(|c| c.rows.clone()).unwrap_or_default()));
    view! {
        <div class="cost">
            <p class="muted">"Attention compares every query with every earlier key, so its work grows with n². The naive way also stores all those scores (n² memory); FlashAttention walks over key tiles with a running softmax and stores only one number per row. Measure it here, on your own machine: attention alone, one layer of this model's shape, at n = 128, 256, …"</p>
            <div class="cost-controls">
                <label>"up to n = "<select on:change=move |ev| max_n.set(event_target_value(&ev).parse().unwrap_or(2048))>
                    {[512usize, 1024, 2048, 4096, 8192].into_iter().map(|n| view! { <option value=n.to_string() selected=n == 2048>{n}</option> }).collect_view()}
                </select></label>
                <button class="run-cost" on:click=move |_| { p.cost_progress.set(Some((0.0, 1.0))); p.error.set(None); p.send(Request::Cost { max_n: max_n.get_untracked() }); } disabled=move || p.model.get().is_none() || p.cost_progress.get().is_some()>"Measure"</button>
                <button on:click=move |_| { p.send(Request::Cancel); } disabled=move || p.cost_progress.get().is_none()>"Cancel"</button>
                {move || p.cost_progress.get().map(|(d, t)| view! { <progress max=t value=d></progress><span class="muted">{format!(" {d:.0} / {t:.0} measurements")}</span> })}
            </div>
            {move || p.cost.get().map(|c| view! {
                <p class="muted">{match &c.gpu { Some(a) => format!("CPU and WebGPU ({a}){}.", if c.cancelled { "; cancelled, partial" } else { "" }), None => format!("CPU only: this page runs on the CPU (the GPU kernels need ?backend=webgpu and an adapter){}.", if c.cancelled { "; cancelled, partial" } else { "" }) }}</p>
            })}
            {move || (p.cost.with(|c| c.is_none()) && p.cost_progress.get().is_none()).then(|| view! {
                <p class="shipped cost-first">"Press Measure to time attention on this machine: two plots (time and memory against n, log-log, with fitted slopes) appear here, after about a minute up to n = 2048. Below: what the model's own shape predicts, without measuring."</p>
            })}
            <div class="cost-plots" class:hidden=move || p.cost.with(|c| c.is_none())>
                <LogLog rows=rows what="attention time (ms, log scale)" pick=|r| r.ms fmt=ms canvas=c_time/>
                <LogLog rows=rows what="memory written beyond q, k, v and the output" pick=|r| r.scratch_bytes as f64 fmt=bytes canvas=c_mem/>
                <p class="muted">"A slope of 2 on log-log axes means n² (double n, four times the cost); a slope of 1 means linear. Time grows like n² for every kernel — flash does the same arithmetic — but the naive kernel's memory grows like n² while flash's grows like n. Small n are dominated by fixed costs (launching work, reading results back), so slopes flatten there."</p>
                <div class="exports">
                    <button on:click=move |_| super::download("attnlab-attention-cost.csv", "text/csv", &cost_csv(&rows.get_untracked()))>"CSV"</button>
                    <button on:click=move |_| if let Some(u) = c_time.get_untracked().and_then(|c| c.to_data_url().ok()) { super::download_url("attnlab-attention-time.png", &u) }>"PNG (time)"</button>
                    <button on:click=move |_| if let Some(u) = c_mem.get_untracked().and_then(|c| c.to_data_url().ok()) { super::download_url("attnlab-attention-memory.png", &u) }>"PNG (memory)"</button>
                </div>
            </div>
            <FlopSplit/>
            <KvCalculator/>
        </div>
    }
}
