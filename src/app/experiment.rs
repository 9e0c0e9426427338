//! The lost-in-the-middle tab: settings, progress with cancel, the U-curve, attention to the
//! answer by layer and position, and the pass-key depth × length grid.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::CanvasRenderingContext2d;

use super::heatmap::ramp;
use crate::analysis::position::{Experiment, ResultRow, Task};

/// A finished (or cancelled) experiment.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
pub struct Outcome {
    pub experiment: Experiment,
    pub rows: Vec<ResultRow>,
    #[serde(default)]
    pub cancelled: bool,
    pub elapsed_ms: f64,
    /// Where a shipped result came from (`attnlab position … --json`, its backend).
    #[serde(default)]
    pub backend: Option<String>,
    /// True for the result shipped with the site (shown until the reader runs their own).
    #[serde(skip)]
    pub shipped: bool,
}

/// The result shipped with the site, made by
/// `attnlab position --task kv --pairs 40 --positions 5 --trials 8 --seed 0 --json`.
pub const SHIPPED_POSITION: &str = "figures/position-kv.json";

/// Fetches a result written by `attnlab position --json` (or the shipped one).
pub async fn shipped_outcome(url: &str) -> Result<Outcome, String> {
    let text = super::fetch::fetch_text(url).await?;
    let mut o: Outcome = serde_json::from_str(&text).map_err(|e| format!("{url}: not an `attnlab position --json` result: {e}"))?;
    if o.rows.is_empty() {
        return Err(format!("{url}: the result holds no rows"));
    }
    o.shipped = true;
    Ok(o)
}

/// How an experiment's settings read.
pub fn settings_text(e: &Experiment) -> String {
    match e.task {
        Task::Kv => format!("key-value retrieval, {} pairs, {} positions × {} trials, seed {}", e.pairs, e.positions, e.trials, e.seed),
        Task::Passkey => format!("pass key in filler of {:?} sentences, {} depths × {} trials, seed {}", e.lengths, e.positions, e.trials, e.seed),
    }
}

pub fn outcome_csv(o: &Outcome) -> String {
    let layers = o.rows.first().map(|r| r.summary.attention_to_gold.len()).unwrap_or(0);
    let mut s = String::from("size,position,relative,mean_logprob,std_logprob,accuracy,trials,mean_tokens");
    for l in 0..layers {
        s.push_str(&format!(",attention_layer_{l}"));
    }
    s.push('\n');
    for r in &o.rows {
        let m = &r.summary;
        s.push_str(&format!("{},{},{},{},{},{},{},{}", r.size, m.index, m.relative, m.mean_logprob, m.std_logprob, m.accuracy, m.trials, m.mean_tokens));
        for a in &m.attention_to_gold {
            s.push_str(&format!(",{a}"));
        }
        s.push('\n');
    }
    s
}

/// Log-prob (with ±1 std) and accuracy against position, one curve per prompt size: left
/// axis log-prob, right axis accuracy, both with ticks; the legend sits above the plot.
fn u_curve(rows: &[ResultRow], size_label: &'static str) -> impl IntoView {
    let (w, h, left, right, top, bottom) = (640.0, 290.0, 58.0, 58.0, 40.0, 40.0);
    let lo = rows.iter().map(|r| r.summary.mean_logprob - r.summary.std_logprob).fold(0.0f32, f32::min).floor().min(-1.0) as f64;
    let x = move |rel: f32| left + rel as f64 * (w - left - right);
    let y = move |lp: f32| top + (lp as f64 / lo) * (h - top - bottom);
    let ya = move |acc: f32| top + (1.0 - acc as f64) * (h - top - bottom);
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.size).collect();
    sizes.dedup();
    let colours = ["#3b5bdb", "#0ca678", "#e8590c", "#ae3ec9"];
    let series = sizes
        .iter()
        .enumerate()
        .map(|(k, size)| {
            let c = colours[k % colours.len()];
            let pts: Vec<&ResultRow> = rows.iter().filter(|r| r.size == *size).collect();
            let line = pts.iter().map(|r| format!("{:.1},{:.1}", x(r.summary.relative), y(r.summary.mean_logprob))).collect::<Vec<_>>().join(" ");
            let acc = pts.iter().map(|r| format!("{:.1},{:.1}", x(r.summary.relative), ya(r.summary.accuracy))).collect::<Vec<_>>().join(" ");
            let marks = pts
                .iter()
                .map(|r| {
                    let m = &r.summary;
                    view! {
                        <line x1=x(m.relative) x2=x(m.relative) y1=y(m.mean_logprob - m.std_logprob) y2=y((m.mean_logprob + m.std_logprob).min(0.0)) stroke=c stroke-width="1.5"/>
                        <circle cx=x(m.relative) cy=y(m.mean_logprob) r="4" fill=c><title>{format!("position {} ({size_label} {}): log-prob {:.2} ± {:.2}, accuracy {:.0}%", m.index, r.size, m.mean_logprob, m.std_logprob, m.accuracy * 100.0)}</title></circle>
                    }
                })
                .collect_view();
            let lx = left + 8.0 + 110.0 * k as f64;
            view! {
                <polyline points=line fill="none" stroke=c stroke-width="2"/>
                <polyline points=acc fill="none" stroke=c stroke-width="1.5" stroke-dasharray="5 4" opacity="0.7"/>
                {marks}
                <line x1=lx x2=lx + 18.0 y1="14" y2="14" stroke=c stroke-width="2"/>
                <text x=lx + 22.0 y="18" font-size="11" fill="currentColor">{format!("{size} {size_label}")}</text>
            }
        })
        .collect_view();
    let step = if -lo > 8.0 { 2.0 } else { 1.0 };
    let left_ticks = (0..=((-lo / step) as usize)).map(|i| { let v = -(i as f64) * step + 0.0; view! {
        <line x1=left - 4.0 x2=left y1=y(v as f32) y2=y(v as f32) stroke="currentColor" opacity="0.6"/>
        <text x=left - 7.0 y=y(v as f32) + 4.0 font-size="10" text-anchor="end" fill="currentColor">{if i == 0 { "0".to_string() } else { format!("{v:.0}") }}</text>
    } }).collect_view();
    let right_ticks = [0.0f32, 0.25, 0.5, 0.75, 1.0].into_iter().map(|a| view! {
        <line x1=w - right x2=w - right + 4.0 y1=ya(a) y2=ya(a) stroke="currentColor" opacity="0.6"/>
        <text x=w - right + 7.0 y=ya(a) + 4.0 font-size="10" fill="currentColor">{format!("{:.0}%", a * 100.0)}</text>
    }).collect_view();
    let x_ticks = [0.0f32, 0.25, 0.5, 0.75, 1.0].into_iter().map(|t| view! {
        <line x1=x(t) x2=x(t) y1=h - bottom y2=h - bottom + 4.0 stroke="currentColor" opacity="0.6"/>
        <text x=x(t) y=h - bottom + 15.0 font-size="10" text-anchor="middle" fill="currentColor">{match t { 0.0 => "first".to_string(), 1.0 => "last".to_string(), _ => format!("{:.0}%", t * 100.0) }}</text>
    }).collect_view();
    view! {
        <svg class="u-curve" viewBox=format!("0 0 {w} {h}") role="img" aria-label="gold answer log-probability (solid, left axis) and accuracy (dashed, right axis) by the answer's position in the prompt">
            <line x1=left x2=w - right y1=h - bottom y2=h - bottom stroke="currentColor" opacity="0.4"/>
            <line x1=left x2=left y1=top y2=h - bottom stroke="currentColor" opacity="0.4"/>
            <line x1=w - right x2=w - right y1=top y2=h - bottom stroke="currentColor" opacity="0.4"/>
            {left_ticks}
            {right_ticks}
            {x_ticks}
            <text x="12" y=(top + h - bottom) / 2.0 font-size="11" text-anchor="middle" fill="currentColor" transform=format!("rotate(-90 12 {})", (top + h - bottom) / 2.0)>"gold log-prob (solid)"</text>
            <text x=w - 8.0 y=(top + h - bottom) / 2.0 font-size="11" text-anchor="middle" fill="currentColor" transform=format!("rotate(90 {} {})", w - 8.0, (top + h - bottom) / 2.0)>"accuracy (dashed)"</text>
            <text x=(w - right + left) / 2.0 y=h - 6.0 font-size="11" text-anchor="middle" fill="currentColor">"position of the answer in the prompt"</text>
            {series}
        </svg>
    }
}

/// Room around the attention-to-answer map for axes and the colour bar.
const EXP_LEFT: f64 = 64.0;
const EXP_TOP: f64 = 12.0;
const EXP_BOTTOM: f64 = 80.0;
const EXP_MAP: (f64, f64) = (420.0, 300.0);

/// Layers down, answer positions across: attention from the question's last token to the
/// answer's line, with axes, ticks and a colour bar.
fn draw_attention(c: &web_sys::HtmlCanvasElement, o: &Outcome, scale: f64) {
    let cols = o.rows.len();
    let layers = o.rows.first().map(|r| r.summary.attention_to_gold.len()).unwrap_or(0);
    if cols == 0 || layers == 0 {
        return;
    }
    let (mw, mh) = EXP_MAP;
    let (tw, th) = (EXP_LEFT + mw + 20.0, EXP_TOP + mh + EXP_BOTTOM);
    c.set_width((tw * scale) as u32);
    c.set_height((th * scale) as u32);
    let Ok(Some(ctx)) = c.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    let _ = ctx.set_transform(scale, 0.0, 0.0, scale, 0.0, 0.0);
    let get = super::heatmap::canvas_css(c);
    let (paper, ink) = (get("--attnlab-paper", "#ffffff"), get("color", "#1d2330"));
    ctx.set_fill_style_str(&paper);
    ctx.fill_rect(0.0, 0.0, tw, th);
    let max = o.rows.iter().flat_map(|r| r.summary.attention_to_gold.iter().cloned()).fold(0.0f32, f32::max).max(1e-9);
    let (cw, ch) = (mw / cols as f64, mh / layers as f64);
    for (ci, r) in o.rows.iter().enumerate() {
        for (l, a) in r.summary.attention_to_gold.iter().enumerate() {
            let [cr, cg, cb] = ramp(a / max);
            ctx.set_fill_style_str(&format!("rgb({cr},{cg},{cb})"));
            ctx.fill_rect(EXP_LEFT + ci as f64 * cw, EXP_TOP + l as f64 * ch, cw + 0.5, ch + 0.5);
        }
    }
    ctx.set_fill_style_str(&ink);
    ctx.set_font("11px system-ui, sans-serif");
    // Layer ticks.
    ctx.set_text_align("right");
    let step = layers.div_ceil(8).max(1);
    for l in (0..layers).step_by(step) {
        let yy = EXP_TOP + (l as f64 + 0.5) * ch;
        ctx.fill_rect(EXP_LEFT - 4.0, yy - 0.5, 4.0, 1.0);
        let _ = ctx.fill_text(&format!("{l}"), EXP_LEFT - 7.0, yy + 4.0);
    }
    ctx.save();
    let _ = ctx.translate(14.0, EXP_TOP + mh / 2.0);
    let _ = ctx.rotate(-std::f64::consts::FRAC_PI_2);
    ctx.set_text_align("center");
    let _ = ctx.fill_text("layer", 0.0, 0.0);
    ctx.restore();
    // Position ticks: the answer's relative position (and prompt size when several).
    ctx.set_text_align("center");
    let several = o.rows.iter().any(|r| r.size != o.rows[0].size);
    let cstep = cols.div_ceil(10).max(1);
    for (ci, r) in o.rows.iter().enumerate().step_by(cstep) {
        let xx = EXP_LEFT + (ci as f64 + 0.5) * cw;
        ctx.fill_rect(xx - 0.5, EXP_TOP + mh, 1.0, 4.0);
        let label = if several { format!("{}:{:.0}%", r.size, r.summary.relative * 100.0) } else { format!("{:.0}%", r.summary.relative * 100.0) };
        let _ = ctx.fill_text(&label, xx, EXP_TOP + mh + 16.0);
    }
    let _ = ctx.fill_text("position of the answer (0% = first line, 100% = last)", EXP_LEFT + mw / 2.0, EXP_TOP + mh + 32.0);
    // Colour bar.
    let (bx, by, bw) = (EXP_LEFT, EXP_TOP + mh + 46.0, 200.0);
    for i in 0..bw as usize {
        let [r, g, b] = ramp(i as f32 / (bw as f32 - 1.0));
        ctx.set_fill_style_str(&format!("rgb({r},{g},{b})"));
        ctx.fill_rect(bx + i as f64, by, 1.0, 9.0);
    }
    ctx.set_fill_style_str(&ink);
    ctx.set_text_align("left");
    let _ = ctx.fill_text("0", bx, by + 22.0);
    ctx.set_text_align("right");
    let _ = ctx.fill_text(&format!("{max:.3}"), bx + bw, by + 22.0);
    ctx.set_text_align("left");
    let _ = ctx.fill_text("attention to the answer's line", bx + bw + 10.0, by + 9.0);
}

/// The attention-to-answer map drawn at 2×, as a PNG data URL.
pub fn attention_png_2x(o: &Outcome) -> Option<String> {
    let doc = web_sys::window()?.document()?;
    let c: web_sys::HtmlCanvasElement = doc.create_element("canvas").ok()?.dyn_into().ok()?;
    draw_attention(&c, o, 2.0);
    c.to_data_url().ok()
}

/// Pass key: depth across, prompt length down, each cell coloured by the gold log-probability
/// (like the needle-in-a-haystack maps), with its accuracy.
fn passkey_grid(rows: &[ResultRow]) -> impl IntoView {
    let mut lengths: Vec<usize> = rows.iter().map(|r| r.size).collect();
    lengths.dedup();
    let worst = rows.iter().map(|r| r.summary.mean_logprob).fold(-1.0f32, f32::min);
    let body = lengths
        .into_iter()
        .map(|len| {
            let cells = rows
                .iter()
                .filter(|r| r.size == len)
                .map(|r| {
                    let m = &r.summary;
                    let [cr, cg, cb] = ramp(1.0 - m.mean_logprob / worst);
                    let fg = if m.mean_logprob / worst < 0.45 { "#fff" } else { "#1d2330" };
                    view! { <td style=format!("background:rgb({cr},{cg},{cb});color:{fg}") title=format!("depth {:.0}%: log-prob {:.2}, accuracy {:.0}%", m.relative * 100.0, m.mean_logprob, m.accuracy * 100.0)>
                        {format!("{:.1} · {:.0}%", m.mean_logprob, m.accuracy * 100.0)}</td> }
                })
                .collect_view();
            let tokens = rows.iter().find(|r| r.size == len).map(|r| r.summary.mean_tokens).unwrap_or(0.0);
            view! { <tr><th>{format!("{len} sentences (~{tokens:.0} tokens)")}</th>{cells}</tr> }
        })
        .collect_view();
    view! {
        <h3>"Pass key: depth × length"</h3>
        <p class="muted">"Each cell: mean log-probability of the pass key · exact-match accuracy. Darker is better recalled; depth runs from the start (left) to the end (right)."</p>
        <table class="results passkey-grid"><tbody>{body}</tbody></table>
    }
}

/// The lost-in-the-middle tab.
#[component]
pub fn LostInTheMiddle(
    /// Starts an experiment.
    on_start: Callback<Experiment>,
    /// Cancels the running one.
    on_cancel: Callback<()>,
    /// (trials done, total) while running.
    #[prop(into)]
    progress: Signal<Option<(f64, f64)>>,
    /// The last outcome.
    #[prop(into)]
    outcome: Signal<Option<Outcome>>,
    /// Whether a model is loaded.
    #[prop(into)]
    ready: Signal<bool>,
    /// The attention heatmap canvas (PNG export).
    canvas_ref: NodeRef<html::Canvas>,
) -> impl IntoView {
    let task = RwSignal::new(Task::Kv);
    let pairs = RwSignal::new(40usize);
    let positions = RwSignal::new(5usize);
    let trials = RwSignal::new(8usize);
    let seed = RwSignal::new(0u64);
    let lengths = RwSignal::new(String::from("30,60,120"));
    let start = move |_| {
        let lengths = lengths.get_untracked().split(',').filter_map(|s| s.trim().parse().ok()).collect();
        on_start.run(Experiment { task: task.get_untracked(), pairs: pairs.get_untracked(), positions: positions.get_untracked(), trials: trials.get_untracked(), seed: seed.get_untracked(), lengths });
    };
    // Layers down, positions across: attention from the question's last token to the answer's line.
    let look = use_context::<super::heatmap::Look>();
    Effect::new(move |_| {
        super::heatmap::use_palette(look);
        let (Some(c), Some(o)) = (canvas_ref.get(), outcome.get()) else { return };
        let dpr = web_sys::window().map(|w| w.device_pixel_ratio()).unwrap_or(1.0).max(1.0);
        draw_attention(&c, &o, dpr);
    });
    let number = move |label: &'static str, sig: RwSignal<usize>, min: usize, max: usize| {
        view! { <label>{label}" "<input type="number" min=min max=max prop:value=move || sig.get() on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<usize>() { sig.set(v.clamp(min, max)) } }/></label> }
    };
    view! {
        <div class="experiment">
            <p class="muted">
                "Liu et al. (2023) found that language models recall a fact best when it sits at the start or the end of a long prompt, and worst in the middle. "
                "Here the model reads a list of keys and values (or a pass key hidden in filler text) and is asked for one of them. For each position of the answer we score, without sampling, how likely the model finds the right answer (log-probability, higher is better) and whether greedy decoding would produce it, "
                "and we measure how much attention the question's last token pays to the answer's line, layer by layer. "
                "Expect primacy near the attention sink at the start, some recency at the end, and a sag in the middle."
            </p>
            <div class="controls">
                <label>"Task "
                    <select on:change=move |ev| task.set(if event_target_value(&ev) == "passkey" { Task::Passkey } else { Task::Kv })>
                        <option value="kv" selected=move || task.get() == Task::Kv>"key-value retrieval"</option>
                        <option value="passkey" selected=move || task.get() == Task::Passkey>"pass key in filler"</option>
                    </select>
                </label>
                {move || (task.get() == Task::Kv).then(|| number("Pairs", pairs, 2, 300))}
                {move || (task.get() == Task::Passkey).then(|| view! { <label>"Filler sentences "<input type="text" size="10" prop:value=move || lengths.get() on:change=move |ev| lengths.set(event_target_value(&ev))/></label> })}
                {number("Positions", positions, 1, 21)}
                {number("Trials", trials, 1, 50)}
                <label>"Seed "<input type="number" min="0" prop:value=move || seed.get() on:change=move |ev| { if let Ok(v) = event_target_value(&ev).parse() { seed.set(v) } }/></label>
                <button class="primary" on:click=start disabled=move || !ready.get() || progress.get().is_some()>"Run experiment"</button>
                <button on:click=move |_| on_cancel.run(()) disabled=move || progress.get().is_none()>"Cancel"</button>
            </div>
            {move || progress.get().map(|(d, t)| view! {
                <div class="progress" role="progressbar" aria-valuenow=format!("{:.0}", d / t.max(1.0) * 100.0)>
                    <div class="bar" style=format!("width:{:.1}%", d / t.max(1.0) * 100.0)></div>
                    <span>{format!("{d:.0} of {t:.0} trials")}</span>
                </div>
            })}
            {move || outcome.get().map(|o| {
                let table = o.rows.iter().map(|r| { let m = &r.summary; view! {
                    <tr><td>{r.size}</td><td>{m.index}</td><td>{format!("{:.2}", m.relative)}</td><td>{format!("{:.2} ± {:.2}", m.mean_logprob, m.std_logprob)}</td><td>{format!("{:.0}%", m.accuracy * 100.0)}</td><td>{format!("{:.0}", m.mean_tokens)}</td></tr>
                } }).collect_view();
                let size_label = if o.experiment.task == Task::Kv { "pairs" } else { "sentences" };
                let grid = (o.experiment.task == Task::Passkey).then(|| passkey_grid(&o.rows));
                view! {
                    {if o.shipped {
                        view! { <p class="shipped">{format!("A saved result for SmolLM2-135M-Instruct ({}; computed ahead of time with the same steps, on a {} in {:.0} s), shown until you run your own with the settings above, on the model loaded now.", settings_text(&o.experiment), if o.backend.as_deref() == Some("webgpu") { "graphics card" } else { "computer's processor" }, o.elapsed_ms / 1e3)}</p> }.into_any()
                    } else {
                        view! { <p class="muted">{format!("{} rows in {:.1} s{}", o.rows.len(), o.elapsed_ms / 1e3, if o.cancelled { " (cancelled: partial results)" } else { "" })}</p> }.into_any()
                    }}
                    {grid}
                    <h3>"Recall by position"</h3>
                    <p class="muted">"Solid: mean log-probability of the gold answer (bars: ±1 std). Dashed: exact-match accuracy (right axis)."</p>
                    {u_curve(&o.rows, size_label)}
                    <table class="results"><thead><tr><th>{size_label}</th><th>"position"</th><th>"relative"</th><th>"log-prob"</th><th>"accuracy"</th><th>"tokens"</th></tr></thead><tbody>{table}</tbody></table>
                }
            })}
            <div class:hidden=move || outcome.get().is_none()>
                <h3>"Attention to the answer: layers down, positions across"</h3>
                <p class="muted">"Each cell: mean attention, over heads and trials, from the question's last token to the line holding the answer."</p>
                <canvas node_ref=canvas_ref class="exp-heatmap" style=format!("aspect-ratio:{}/{}", EXP_LEFT + EXP_MAP.0 + 20.0, EXP_TOP + EXP_MAP.1 + EXP_BOTTOM) role="img"
                    aria-label=move || outcome.with(|o| o.as_ref().map(|o| attention_summary(o)).unwrap_or_default())></canvas>
            </div>
        </div>
    }
}

/// Text alternative of the attention-to-answer map: where attention to the answer peaks.
fn attention_summary(o: &Outcome) -> String {
    let mut best = (0.0f32, 0usize, 0usize);
    for (ci, r) in o.rows.iter().enumerate() {
        for (l, a) in r.summary.attention_to_gold.iter().enumerate() {
            if *a > best.0 {
                best = (*a, l, ci);
            }
        }
    }
    let rel = o.rows.get(best.2).map(|r| r.summary.relative * 100.0).unwrap_or(0.0);
    format!("Attention from the question to the answer's line, by layer (down) and answer position (across). Strongest: layer {} with the answer at {rel:.0}% of the prompt, {:.3}.", best.1, best.0)
}
