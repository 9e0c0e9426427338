//! "Why sinks matter" (in the attention-sink tab): how well the model predicts a long text when
//! its cache keeps every earlier token, only the last W, the first S beside those W
//! (StreamingLLM), or everything but the first token. Opens on a saved run of the license text
//! (`attnlab streaming`), so the chart is there before anything is computed; the reader can run
//! it again here with other settings, on that text or on their own.

use leptos::prelude::*;

use super::state::Page;
use super::write_on::WrittenRows;
use crate::analysis::through_model::{perplexity, policies, Streaming};
use crate::generate::Variant;
use crate::worker::protocol::WrittenText;

/// The saved run shown first, and the text it was computed on.
pub const SHIPPED: &str = "figures/streaming-license.json";
pub const SHIPPED_TEXT: &str = "figures/apache-2.0.txt";
/// Predictions averaged for one point of the curve.
const SMOOTH: usize = 64;

/// A comparison of the cache policies, and where it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamingView {
    pub streaming: Streaming,
    /// The text's tokens (empty for the saved run: it holds ids only).
    pub tokens: Vec<String>,
    pub shipped: bool,
}

/// (policy, words, colour, dashed).
const POLICIES: [(&str, &str, &str, bool); 4] = [
    ("dense", "every earlier token", "#1d2330", false),
    ("window", "only the last W tokens", "#e8590c", false),
    ("sinks+window", "the first S tokens + the last W", "#2b8a3e", false),
    ("no-key0", "every token but the first", "#4c6ef5", true),
];

/// One policy drawn: (name, words, colour, dashed, (position, running perplexity), perplexity
/// after the window).
type Curve = (&'static str, &'static str, &'static str, bool, Vec<(usize, f64)>, f64);

/// Perplexity of the `SMOOTH` predictions ending at each position (from the first full one).
fn running(logp: &[f32]) -> Vec<(usize, f64)> {
    (SMOOTH..=logp.len()).step_by(4).map(|end| (end, perplexity(&logp[end - SMOOTH..end]))).collect()
}

fn csv(v: &StreamingView) -> String {
    let s = &v.streaming;
    let mut out = String::from("\"position\",\"token\"");
    for (name, ..) in POLICIES {
        out.push_str(&format!(",\"log p ({name})\""));
    }
    out.push('\n');
    for i in 0..s.ids.len().saturating_sub(1) {
        let tok = v.tokens.get(i + 1).cloned().unwrap_or_else(|| s.ids[i + 1].to_string()).replace('"', "\"\"");
        out.push_str(&format!("{},\"{tok}\"", i + 1));
        for (name, ..) in POLICIES {
            out.push_str(&format!(",{}", s.policies.get(name).and_then(|p| p.logp.get(i)).copied().unwrap_or(f32::NAN)));
        }
        out.push('\n');
    }
    out
}

/// A row of "write on": the cache in words.
fn row_label(row: &WrittenText) -> String {
    let name = row.variant.policy.name();
    let words = POLICIES.iter().find(|p| p.0 == name).map(|p| p.1).unwrap_or(name);
    let words = match row.variant.policy {
        crate::model::arch::CachePolicy::Window { window } => words.replace('W', &window.to_string()),
        crate::model::arch::CachePolicy::SinksWindow { sinks, window } => words.replace('S', &sinks.to_string()).replace('W', &window.to_string()),
        _ => words.to_string(),
    };
    format!("{words} ({name})")
}

#[component]
pub fn SinksMatter(
    /// Where the site's files are (ending in `/`).
    base: String,
) -> impl IntoView {
    let p = expect_context::<Page>();
    let window = RwSignal::new(256usize);
    let sinks = RwSignal::new(4usize);
    let hover = RwSignal::new(None::<usize>);
    let (poster, license) = (format!("{base}{SHIPPED}"), format!("{base}{SHIPPED_TEXT}"));
    // The saved run, unless the reader's own arrived first.
    leptos::task::spawn_local(async move {
        if let Ok(text) = super::fetch::fetch_text(&poster).await {
            if let Ok(s) = serde_json::from_str::<Streaming>(&text) {
                if p.streaming.with_untracked(|v| v.is_none()) {
                    p.streaming.set(Some(StreamingView { streaming: s, tokens: vec![], shipped: true }));
                }
            }
        }
    });
    // Which text the chart is on (the license text first): the one "write on" continues.
    let on_license = RwSignal::new(true);
    let license_url = license.clone();
    let write = move || {
        let variants: Vec<Variant> = policies(window.get_untracked(), sinks.get_untracked()).into_iter().map(Variant::policy).collect();
        if !on_license.get_untracked() {
            return p.request_write_on("sinks", Some(p.text.get_untracked()), variants);
        }
        let url = license_url.clone();
        leptos::task::spawn_local(async move {
            match super::fetch::fetch_text(&url).await {
                Ok(t) => p.request_write_on("sinks", Some(t), variants),
                Err(e) => p.error.set(Some(e)),
            }
        });
    };
    let run_license = move || {
        on_license.set(true);
        p.streaming_progress.set(Some((0.0, 4.0)));
        let license = license.clone();
        leptos::task::spawn_local(async move {
            match super::fetch::fetch_text(&license).await {
                Ok(t) => {
                    p.streaming_progress.set(None);
                    p.request_streaming(t, window.get_untracked(), sinks.get_untracked())
                }
                Err(e) => {
                    p.streaming_progress.set(None);
                    p.error.set(Some(e));
                }
            }
        });
    };
    let (w, h, left, right, top, bottom) = (640.0f64, 280.0f64, 52.0f64, 24.0f64, 12.0f64, 40.0f64);
    view! {
        <section class="sinks-matter" aria-labelledby="sinks-matter-title">
            <h3 id="sinks-matter-title">"Why sinks matter: a long text through a small cache"</h3>
            <p class="muted">"A model that writes a long text keeps the keys and values of every earlier token. To save memory one can keep only the last W tokens — but then the first tokens, where so many heads park their attention, are gone. Xiao et al. (StreamingLLM, 2023) found that this wrecks the predictions, and that keeping just a few first tokens beside the window repairs them. Here is the same test on this model: how surprised it is by each next token of a long text (perplexity; lower is better) under four caches."</p>
            <div class="streaming-controls">
                <label>"window W "<input type="number" min="16" max="1024" step="16" prop:value=move || window.get() on:change=move |ev| window.set(event_target_value(&ev).parse::<usize>().unwrap_or(256).clamp(16, 1024))/></label>
                <label>"first tokens kept S "<input type="number" min="0" max="64" prop:value=move || sinks.get() on:change=move |ev| sinks.set(event_target_value(&ev).parse::<usize>().unwrap_or(4).min(64))/></label>
                <button class="run-streaming" on:click=move |_| run_license() disabled=move || p.model.get().is_none() || p.streaming_progress.get().is_some()>"Run on the license text"</button>
                <button class="run-streaming-yours" on:click=move |_| { on_license.set(false); p.request_streaming(p.text.get_untracked(), window.get_untracked(), sinks.get_untracked()) } disabled=move || p.model.get().is_none() || p.streaming_progress.get().is_some()>"Run on your text"</button>
                <button class="write-streaming" on:click=move |_| write() disabled=move || p.model.get().is_none() || p.writing.get().is_some()
                    title="What the model writes after the text under each cache">{move || if on_license.get() { "Let it write on after the license text" } else { "Let it write on after your text" }}</button>
                {move || p.streaming_progress.get().map(|(d, t)| view! { <progress max=t value=d></progress><span class="muted">{format!(" cache {} of 4 (each reads the whole text)", (d as usize + 1).min(4))}</span> })}
            </div>
            {move || p.streaming.get().map(|v| {
                let s = v.streaming.clone();
                let n = s.ids.len().max(2);
                let lines: Vec<Curve> = POLICIES.iter().filter_map(|&(name, words, colour, dashed)| s.policies.get(name).map(|r| (name, words, colour, dashed, running(&r.logp), r.ppl_after_window))).collect();
                let ymax = lines.iter().flat_map(|l| l.4.iter().map(|p| p.1)).fold(2.0f64, f64::max).min(1e4);
                let ymin = lines.iter().flat_map(|l| l.4.iter().map(|p| p.1)).fold(ymax, f64::min).max(1.0);
                let (ly0, ly1) = ((ymin * 0.9).ln(), (ymax * 1.1).ln());
                let x = move |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
                let y = move |v: f64| top + (h - top - bottom) * (1.0 - (v.ln() - ly0) / (ly1 - ly0));
                let ticks: Vec<f64> = [1.0f64, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0].into_iter().filter(|t| t.ln() >= ly0 && t.ln() <= ly1).collect();
                let xticks: Vec<usize> = (0..=n).step_by(if n > 1200 { 256 } else if n > 400 { 128 } else { 32 }).collect();
                let win = s.window.min(n - 1);
                let readout = {
                    let lines = lines.clone();
                    move || hover.get().map(|i| {
                        let vals: Vec<String> = lines.iter().filter_map(|l| l.4.iter().min_by_key(|p| p.0.abs_diff(i)).map(|p| format!("{} {:.1}", l.0, p.1))).collect();
                        format!("tokens {}–{}: {}", i.saturating_sub(SMOOTH), i, vals.join(" · "))
                    }).unwrap_or_else(|| format!("Hover the chart: the perplexity of the {SMOOTH} predictions ending there, under each cache."))
                };
                let on_move = move |ev: web_sys::MouseEvent| {
                    let Some(t) = ev.current_target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok()) else { return };
                    let r = t.get_bounding_client_rect();
                    let fx = (ev.client_x() as f64 - r.left()) / r.width() * w;
                    let i = (((fx - left) / (w - left - right)) * (n - 1) as f64).round().clamp(0.0, (n - 1) as f64) as usize;
                    hover.set(Some(i));
                };
                let dense = s.policies.get("dense").map(|r| r.ppl_after_window).unwrap_or(f64::NAN);
                let finding = match (s.policies.get("window"), s.policies.get("sinks+window"), s.policies.get("no-key0")) {
                    (Some(wi), Some(sw), Some(nk)) => format!(
                        "After token {}: every earlier token {dense:.2}; only the last {} tokens {:.2} ({:.1}× worse); the first {} tokens kept beside them {:.2}; every token but the first {:.2}. Evicting the first tokens hurts; hiding one of them, with the rest in view, barely does.",
                        s.window, s.window, wi.ppl_after_window, wi.ppl_after_window / dense, s.sinks, sw.ppl_after_window, nk.ppl_after_window),
                    _ => String::new(),
                };
                let source = if v.shipped { format!("A saved run on the first {} tokens of the Apache License 2.0 (window {}, {} first tokens kept), made with the command-line tool; press a Run button to compute it here.", s.ids.len(), s.window, s.sinks) } else { format!("Computed here on {} tokens (window {}, {} first tokens kept).", s.ids.len(), s.window, s.sinks) };
                view! {
                    <figure class="streaming-figure">
                        <svg class="streaming-chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label="perplexity along the text under four caches" on:mousemove=on_move on:mouseleave=move |_| hover.set(None)>
                            {ticks.iter().map(|&t| view! {
                                <line x1=left x2=w - right y1=y(t) y2=y(t) class="grid"/>
                                <text x=left - 6.0 y=y(t) + 4.0 text-anchor="end" font-size="11">{format!("{t}")}</text>
                            }).collect_view()}
                            {xticks.iter().map(|&i| view! { <text x=x(i) y=h - bottom + 16.0 text-anchor="middle" font-size="11">{i.to_string()}</text> }).collect_view()}
                            <text x=(left + w - right) / 2.0 y=h - 6.0 text-anchor="middle" font-size="12">"position in the text (tokens)"</text>
                            <text x="12" y=(top + h - bottom) / 2.0 text-anchor="middle" font-size="12" transform=format!("rotate(-90 12 {})", (top + h - bottom) / 2.0)>"perplexity (log scale)"</text>
                            <line x1=x(win) x2=x(win) y1=top y2=h - bottom class="window-edge"/>
                            <text x=x(win) + 4.0 y=top + 12.0 font-size="11">{format!("window W = {}", s.window)}</text>
                            {lines.iter().map(|(name, _, colour, dashed, pts, _)| {
                                let d: String = pts.iter().map(|&(i, v)| format!("{:.1},{:.1}", x(i), y(v))).collect::<Vec<_>>().join(" ");
                                view! { <polyline points=d fill="none" stroke=*colour stroke-width="2" stroke-dasharray=if *dashed { "5 3" } else { "" } data-policy=*name/> }
                            }).collect_view()}
                            {move || hover.get().map(|i| view! { <line x1=x(i) x2=x(i) y1=top y2=h - bottom class="hover-line"/> })}
                        </svg>
                        <figcaption>
                            <ul class="streaming-legend">
                                {lines.iter().map(|(name, words, colour, dashed, _, ppl)| view! {
                                    <li data-policy=*name><span class="swatch" style=format!("background:{colour};{}", if *dashed { "opacity:.7" } else { "" })></span>{format!(" {words} ({name}): ")}<strong class="ppl">{format!("{ppl:.2}")}</strong></li>
                                }).collect_view()}
                            </ul>
                            <p class="hover-readout" aria-live="polite">{readout}</p>
                            <p class="streaming-finding">{finding}</p>
                            <p class="muted">{source}" Each curve is the perplexity of 64 predictions in a row; the numbers in the legend score every prediction after the window. Positions stay the tokens' own positions in the text."</p>
                        </figcaption>
                    </figure>
                    <div class="exports"><button on:click=move |_| super::download("attnlab-cache-policies.csv", "text/csv", &csv(&v))>"CSV"</button></div>
                }
            })}
            {move || p.written.with(|w| w.as_ref().is_some_and(|w| w.owner == "sinks")).then(|| view! {
                <h4>"What the model writes under each cache"</h4>
                <p class="muted">"The same text, continued under each cache: keys outside the cache are never read, as if they had been dropped, and every token keeps its own position. After the license text, the window alone soon falls into a loop; with its first four tokens kept the model writes on sensibly again — StreamingLLM's point, on this model. Try it on your own text too."</p>
            })}
            <WrittenRows owner="sinks" label=row_label/>
        </section>
    }
}
