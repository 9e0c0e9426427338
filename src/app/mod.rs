//! The browser page (Leptos, client-side rendered).
//!
//! This first page loads the default model with a progress bar, shows the text as the
//! model's tokens as you type, and runs the CPU engine to list the next-token candidates and
//! the attention-sink mass per layer. The full playground (worker, WebGPU, heatmaps) is built
//! on these same engine calls.

mod loader;

use std::rc::Rc;

use leptos::prelude::*;

use crate::analysis::report::{inspect, HeadSelection, InspectReport};
use crate::backends::cpu::CpuBackend;
use crate::Model;

/// Path of the default model inside the built site (Trunk copies `models/` into `dist/`).
pub const DEFAULT_MODEL_URL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
const EXAMPLE: &str = "The dog chased the cat because it was hungry.";

#[derive(Clone)]
enum ModelState {
    Loading { received: f64, total: Option<f64> },
    Ready(Rc<Model>),
    Failed(String),
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let (state, set_state) = signal_local(ModelState::Loading { received: 0.0, total: None });
    let (text, set_text) = signal(EXAMPLE.to_string());
    // The last run and its top next-token candidates as text.
    let (report, set_report) = signal_local(None::<Result<(InspectReport, Vec<(String, f32)>), String>>);

    leptos::task::spawn_local(async move {
        let progress = move |received: f64, total: Option<f64>| set_state.set(ModelState::Loading { received, total });
        let result = loader::fetch_bytes(DEFAULT_MODEL_URL, progress).await;
        set_state.set(match result.and_then(|b: Vec<u8>| Model::from_gguf_vec(b).map_err(|e| e.to_string())) {
            Ok(m) => ModelState::Ready(Rc::new(m)),
            Err(e) => ModelState::Failed(e),
        });
    });

    let tokens = move || match state.get() {
        ModelState::Ready(m) => {
            let t = text.get();
            m.tokenizer.encode(&t).into_iter().map(|id| (id, m.tokenizer.token_text(id))).collect::<Vec<_>>()
        }
        _ => vec![],
    };
    let run = move |_| {
        if let ModelState::Ready(m) = state.get() {
            let r = inspect(&m, &CpuBackend::new(), &text.get(), &HeadSelection::List(vec![])).map_err(|e| e.to_string());
            set_report.set(Some(r.map(|r| {
                let top = r.last_logits_top.iter().take(5).map(|(id, l)| (m.tokenizer.token_text(*id), (l - r.last_logsumexp).exp())).collect();
                (r, top)
            })));
        }
    };

    view! {
        <main class="page">
            <h1>"attnlab"</h1>
            <p class="lede">"Where does each attention head of a real language model look? SmolLM2-135M runs here, in your browser."</p>
            {move || match state.get() {
                ModelState::Loading { received, total } => {
                    let pct = total.map(|t| received / t * 100.0).unwrap_or(0.0);
                    view! {
                        <div class="progress" role="progressbar" aria-valuenow=pct>
                            <div class="bar" style=format!("width:{pct:.1}%")></div>
                            <span>{format!("Loading model: {:.1} MB{}", received / 1e6, total.map(|t| format!(" of {:.1} MB", t / 1e6)).unwrap_or_default())}</span>
                        </div>
                    }.into_any()
                }
                ModelState::Failed(e) => view! { <p class="error" role="alert">{format!("The model could not be loaded: {e}")}</p> }.into_any(),
                ModelState::Ready(m) => view! {
                    <p class="badge">{format!("{}: {} layers × {} heads ({} KV heads), CPU engine", m.info.name, m.config.n_layer, m.config.n_head, m.config.n_head_kv)}</p>
                }.into_any(),
            }}
            <label for="text">"Text"</label>
            <textarea id="text" rows="3" prop:value=text on:input=move |ev| set_text.set(event_target_value(&ev))></textarea>
            <div class="tokens" aria-label="tokens">
                <For each=move || tokens().into_iter().enumerate() key=|(i, (id, _))| (*i, *id) let((_, (id, t)))>
                    <span class="token" title=format!("id {id}")>{t}</span>
                </For>
            </div>
            <button on:click=run disabled=move || !matches!(state.get(), ModelState::Ready(_))>"Run the model"</button>
            {move || report.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Ok((r, top)) => view! { <Summary report=r top=top/> }.into_any(),
            })}
        </main>
    }
}

/// Next-token candidates and per-layer sink mass of one run.
#[component]
fn Summary(
    /// The result to show.
    report: InspectReport,
    /// Next-token candidates (decoded text, probability), most likely first.
    top: Vec<(String, f32)>,
) -> impl IntoView {
    let sinks: Vec<(usize, f32)> = report
        .sink_mass_key0
        .iter()
        .enumerate()
        .filter_map(|(l, hs)| {
            let v: Vec<f32> = hs.iter().flatten().copied().collect();
            (!v.is_empty()).then(|| (l, v.iter().sum::<f32>() / v.len() as f32))
        })
        .collect();
    view! {
        <section>
            <h2>"Next token"</h2>
            <ol>{top.into_iter().map(|(id, p)| view! { <li><code>{format!("{id:?}")}</code>{format!(" {:.1}%", p * 100.0)}</li> }).collect_view()}</ol>
            <h2>"Attention sink: mean mass on the first token, by layer"</h2>
            <div class="sinks">{sinks.into_iter().map(|(l, m)| view! {
                <div class="sink" title=format!("layer {l}: {m:.3}")><div class="fill" style=format!("height:{:.0}%", m * 100.0)></div><span>{l}</span></div>
            }).collect_view()}</div>
            <p class="muted">{format!("forward {:.0} ms", report.timings_ms.forward)}</p>
        </section>
    }
}
