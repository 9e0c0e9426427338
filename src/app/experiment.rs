//! The lost-in-the-middle tab: settings, progress with cancel, the U-curve, attention to the
//! answer by layer and position, and the pass-key depth × length grid.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, ImageData};

use super::heatmap::ramp;
use crate::analysis::position::{Experiment, ResultRow, Task};

/// A finished (or cancelled) experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub experiment: Experiment,
    pub rows: Vec<ResultRow>,
    pub cancelled: bool,
    pub elapsed_ms: f64,
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

/// Log-prob (with ±1 std) and accuracy against position, one curve per prompt size.
fn u_curve(rows: &[ResultRow]) -> impl IntoView {
    let (w, h, left, right, top, bottom) = (600.0, 260.0, 46.0, 46.0, 14.0, 34.0);
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
                        <circle cx=x(m.relative) cy=y(m.mean_logprob) r="4" fill=c><title>{format!("position {} (size {}): log-prob {:.2} ± {:.2}, accuracy {:.0}%", m.index, r.size, m.mean_logprob, m.std_logprob, m.accuracy * 100.0)}</title></circle>
                    }
                })
                .collect_view();
            view! {
                <polyline points=line fill="none" stroke=c stroke-width="2"/>
                <polyline points=acc fill="none" stroke=c stroke-width="1.5" stroke-dasharray="5 4" opacity="0.7"/>
                {marks}
                <text x=w - right + 4.0 y=top + 12.0 + 14.0 * k as f64 font-size="11" fill=c>{format!("{size}")}</text>
            }
        })
        .collect_view();
    view! {
        <svg class="u-curve" viewBox=format!("0 0 {w} {h}") role="img" aria-label="gold answer log-probability and accuracy by position">
            <line x1=left x2=w - right y1=y(0.0) y2=y(0.0) stroke="#ccd"/>
            <line x1=left x2=left y1=top y2=h - bottom stroke="#ccd"/>
            <text x="4" y=y(0.0) + 4.0 font-size="10">"0"</text>
            <text x="4" y=h - bottom font-size="10">{format!("{lo:.0}")}</text>
            <text x=left y=h - 8.0 font-size="11">"first"</text>
            <text x=(w - right + left) / 2.0 y=h - 8.0 font-size="11" text-anchor="middle">"position of the answer in the prompt"</text>
            <text x=w - right y=h - 8.0 font-size="11" text-anchor="end">"last"</text>
            <text x=w - right + 4.0 y=ya(1.0) + 4.0 font-size="10">"100%"</text>
            <text x=w - right + 4.0 y=ya(0.0) font-size="10">"0%"</text>
            {series}
        </svg>
    }
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
    Effect::new(move |_| {
        let (Some(c), Some(o)) = (canvas_ref.get(), outcome.get()) else { return };
        let cols = o.rows.len();
        let layers = o.rows.first().map(|r| r.summary.attention_to_gold.len()).unwrap_or(0);
        if cols == 0 || layers == 0 {
            return;
        }
        c.set_width(cols as u32);
        c.set_height(layers as u32);
        let max = o.rows.iter().flat_map(|r| r.summary.attention_to_gold.iter().cloned()).fold(0.0f32, f32::max).max(1e-9);
        let mut px = vec![0u8; cols * layers * 4];
        for (ci, r) in o.rows.iter().enumerate() {
            for (l, a) in r.summary.attention_to_gold.iter().enumerate() {
                let at = (l * cols + ci) * 4;
                px[at..at + 3].copy_from_slice(&ramp(a / max));
                px[at + 3] = 255;
            }
        }
        if let (Ok(Some(ctx)), Ok(img)) = (c.get_context("2d"), ImageData::new_with_u8_clamped_array_and_sh(Clamped(&px), cols as u32, layers as u32)) {
            let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
            let _ = ctx.put_image_data(&img, 0.0, 0.0);
        }
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
                    <p class="muted">{format!("{} rows in {:.1} s{}", o.rows.len(), o.elapsed_ms / 1e3, if o.cancelled { " (cancelled: partial results)" } else { "" })}</p>
                    {grid}
                    <h3>"Recall by position"</h3>
                    <p class="muted">"Solid: mean log-probability of the gold answer (bars: ±1 std). Dashed: exact-match accuracy (right axis)."</p>
                    {u_curve(&o.rows)}
                    <table class="results"><thead><tr><th>{size_label}</th><th>"position"</th><th>"relative"</th><th>"log-prob"</th><th>"accuracy"</th><th>"tokens"</th></tr></thead><tbody>{table}</tbody></table>
                }
            })}
            <div class:hidden=move || outcome.get().is_none()>
                <h3>"Attention to the answer: layers down, positions across"</h3>
                <canvas node_ref=canvas_ref class="exp-heatmap" role="img" aria-label="attention from the question to the answer's line, by layer and position"></canvas>
            </div>
        </div>
    }
}
