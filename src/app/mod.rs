//! The playground page (Leptos, client-side rendered). The model runs in a Web Worker
//! (`src/worker/`), on WebGPU when the browser has an adapter and on the CPU otherwise, so
//! this thread only draws.
//!
//! Testing and embedding contract (stable; courses and tests rely on it):
//! - `?text=…&layer=L&head=H&view=head|model|sinks&run=1` loads the model and runs;
//! - `<html data-attnlab-state>`: `loading-model` → `running` → `done`, or `error`;
//! - `<html data-attnlab-backend>`: `webgpu` or `cpu`;
//! - `window.attnlab.exportJson()`: the current result, the schema of `attnlab inspect --json`
//!   with `attention` holding the selected head.
//! - [`mount_playground`] mounts the whole playground into any element of a page.

mod client;
mod embed_dialog;
mod engine;
mod experiment;
mod heatmap;
mod panels;
mod widget;

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::worker::protocol::{HeadMap, ModelSummary, Request, Response, RunResult, MASKED};
use client::Client;
use embed_dialog::EmbedDialog;
use engine::page_base;
use heatmap::Heatmap;
use experiment::{outcome_csv, shipped_outcome, LostInTheMiddle, Outcome};
use panels::{ModelView, SinkPanel, TokenStrip};

/// The default model inside the built site (Trunk copies `models/` into `dist/`).
pub const DEFAULT_MODEL_URL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The models the picker offers: (`?model=` id, label, URL inside the site).
pub const MODELS: [(&str, &str, &str); 2] = [
    ("smollm2", "SmolLM2-135M (GQA: 9 query heads, 3 KV heads)", DEFAULT_MODEL_URL),
    ("gemma3", "Gemma 3 270M (MQA: 4 query heads, 1 KV head; sliding window)", "models/gemma-3-270m-q4_k_m.gguf"),
];

/// The picker's id of a model URL ("" for a file or URL of the reader's own).
fn model_id(url: &str) -> &'static str {
    MODELS.iter().find(|m| url.ends_with(m.2)).map(|m| m.0).unwrap_or("")
}

/// Reloads the page on another model, keeping the text and the view (`?model=` holds it).
fn switch_model(id: &str) {
    let Some(w) = web_sys::window() else { return };
    let search = w.location().search().unwrap_or_default();
    let Ok(p) = web_sys::UrlSearchParams::new_with_str(&search) else { return };
    p.set("model", id);
    p.set("layer", "0");
    p.set("head", "0");
    let _ = w.location().set_search(&String::from(p.to_string()));
}

/// What a layer's attention may see, for the heatmap's caption.
fn layer_kind(m: &ModelSummary, layer: usize) -> String {
    match m.layer_window.get(layer).copied().flatten() {
        Some(w) => format!("local layer: a sliding window of the last {w} tokens"),
        None if m.layer_window.iter().any(|w| w.is_some()) => "global layer: every earlier token".to_string(),
        None => String::new(),
    }
}
const EXAMPLE: &str = "The dog chased the cat because it was hungry.";
const MAX_SIDE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// An embedded widget that has not started (lazy, not yet scrolled near).
    Idle,
    LoadingModel,
    Ready,
    Running,
    Done,
    Error,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::LoadingModel => "loading-model",
            Phase::Ready => "ready",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Head,
    Model,
    Sinks,
    Position,
    /// The token strip alone (embedded widgets).
    Tokens,
}

impl View {
    fn as_str(self) -> &'static str {
        match self {
            View::Head => "head",
            View::Model => "model",
            View::Sinks => "sinks",
            View::Position => "position",
            View::Tokens => "tokens",
        }
    }
    fn parse(s: &str) -> View {
        match s {
            "model" => View::Model,
            "sinks" => View::Sinks,
            "position" => View::Position,
            _ => View::Head,
        }
    }
}

/// State read from the page URL.
struct UrlState {
    text: Option<String>,
    layer: usize,
    head: usize,
    view: View,
    run: bool,
    /// `?model=smollm2|gemma3`.
    model: Option<String>,
}

fn read_url() -> UrlState {
    let params = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok());
    let get = |k: &str| params.as_ref().and_then(|p| p.get(k));
    UrlState {
        text: get("text"),
        layer: get("layer").and_then(|v| v.parse().ok()).unwrap_or(0),
        head: get("head").and_then(|v| v.parse().ok()).unwrap_or(0),
        view: View::parse(&get("view").unwrap_or_default()),
        run: get("run").as_deref() == Some("1"),
        model: get("model"),
    }
}

fn write_url(text: &str, layer: usize, head: usize, view: View) {
    let Some(w) = web_sys::window() else { return };
    let Ok(p) = web_sys::UrlSearchParams::new() else { return };
    p.append("text", text);
    p.append("layer", &layer.to_string());
    p.append("head", &head.to_string());
    p.append("view", view.as_str());
    // Keep the model choice.
    let current = w.location().search().ok().and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok()).and_then(|c| c.get("model"));
    if let Some(m) = current {
        p.append("model", &m);
    }
    let path = w.location().pathname().unwrap_or_default();
    let _ = w.history().and_then(|h| h.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}?{}", String::from(p.to_string())))));
}

fn set_root_data(key: &str, value: &str) {
    if let Some(el) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
        let _ = el.set_attribute(key, value);
    }
}

/// Starts a download of `data` named `name`.
fn download(name: &str, mime: &str, data: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(data));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else { return };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    download_url(name, &url);
    let _ = web_sys::Url::revoke_object_url(&url);
}

fn download_url(name: &str, url: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    let Ok(a) = doc.create_element("a") else { return };
    let a: web_sys::HtmlAnchorElement = a.unchecked_into();
    a.set_href(url);
    a.set_download(name);
    a.click();
}

/// The current result as the JSON of `attnlab inspect --json`, `attention` holding the
/// selected head's exact rows.
fn export_json(run: &RunResult, rows: Option<&Vec<Vec<f32>>>, layer: usize, head: usize) -> String {
    let mut report = run.report.clone();
    if let Some(rows) = rows {
        report.attention = [(format!("{layer}.{head}"), rows.clone())].into_iter().collect();
    }
    serde_json::to_string(&report).unwrap_or_default()
}

fn map_csv(m: &HeadMap, tokens: &[String]) -> String {
    let mut out = String::new();
    let label = |start: usize, block: usize, c: usize| -> String {
        let t0 = start + c * block;
        if block == 1 {
            format!("{t0}:{}", tokens.get(t0).cloned().unwrap_or_default().replace('"', "\"\""))
        } else {
            format!("{t0}-{}", t0 + block - 1)
        }
    };
    out.push_str("\"query \\ key\"");
    for c in 0..m.side_k {
        out.push_str(&format!(",\"{}\"", label(m.cols.0, m.block_k, c)));
    }
    out.push('\n');
    for r in 0..m.side_q {
        out.push_str(&format!("\"{}\"", label(m.rows.0, m.block_q, r)));
        for c in 0..m.side_k {
            let v = m.values[r * m.side_k + c];
            if v == MASKED {
                out.push(',');
            } else {
                out.push_str(&format!(",{v}"));
            }
        }
        out.push('\n');
    }
    out
}

/// The whole page (the default entry point).
#[component]
pub fn App() -> impl IntoView {
    view! { <Playground/> }
}

/// The playground: model loading, text, token strip, heatmap, model view, sink panel.
#[component]
pub fn Playground(
    /// URL of the GGUF model to load (default: the bundled SmolLM2-135M).
    #[prop(optional, into)]
    model_url: Option<String>,
    /// Where the worker script lives (a prefix ending in `/`; default: next to the page).
    #[prop(optional, into)]
    asset_base: Option<String>,
) -> impl IntoView {
    let url = read_url();
    let phase = RwSignal::new(Phase::LoadingModel);
    let progress = RwSignal::new((String::from("download"), 0.0f64, None::<f64>));
    let backend = RwSignal::new(None::<(String, String, Option<String>)>);
    let model = RwSignal::new(None::<ModelSummary>);
    let text = RwSignal::new(url.text.clone().unwrap_or_else(|| EXAMPLE.to_string()));
    let layer = RwSignal::new(url.layer);
    let head = RwSignal::new(url.head);
    let view_sel = RwSignal::new(url.view);
    let query = RwSignal::new(None::<usize>);
    let run = RwSignal::new(None::<RunResult>);
    let map = RwSignal::new(None::<HeadMap>);
    let rows = RwSignal::new(None::<Vec<Vec<f32>>>);
    let thumbs = RwSignal::new(None::<Vec<HeadMap>>);
    let error = RwSignal::new(None::<String>);
    let pending_run = StoredValue::new(url.run);
    let canvas_ref: NodeRef<html::Canvas> = NodeRef::new();
    let exp_canvas: NodeRef<html::Canvas> = NodeRef::new();
    let exp_progress = RwSignal::new(None::<(f64, f64)>);
    let exp_outcome = RwSignal::new(None::<Outcome>);
    let client: StoredValue<Option<Client>, LocalStorage> = StoredValue::new_local(None);
    let embed_open = RwSignal::new(false);

    let send = move |req: Request| {
        client.with_value(|c| {
            if let Some(c) = c {
                c.send(&req);
            }
        })
    };
    let start_run = move || {
        if model.get_untracked().is_none() {
            pending_run.set_value(true);
            return;
        }
        phase.set(Phase::Running);
        error.set(None);
        thumbs.set(None);
        send(Request::Run { text: text.get_untracked(), layer: layer.get_untracked(), head: head.get_untracked(), max_side: MAX_SIDE, slot: 0 });
    };
    let request_head = move |rows_cols: Option<((usize, usize), (usize, usize))>| {
        if run.get_untracked().is_none() {
            return;
        }
        phase.set(Phase::Running);
        let (r, c) = match rows_cols {
            Some((r, c)) => (Some(r), Some(c)),
            None => (None, None),
        };
        send(Request::Head { layer: layer.get_untracked(), head: head.get_untracked(), max_side: MAX_SIDE, rows: r, cols: c, slot: 0 });
    };

    let on_response = move |r: Response| match r {
        Response::Ready => {}
        Response::Progress { phase: p, done, total } if p == "experiment" => exp_progress.set(Some((done, total.unwrap_or(done)))),
        Response::Progress { phase: p, done, total } => progress.set((p, done, total)),
        Response::Experiment { experiment, rows, cancelled, elapsed_ms } => {
            exp_progress.set(None);
            exp_outcome.set(Some(Outcome { experiment, rows, cancelled, elapsed_ms, backend: None, shipped: false }));
        }
        Response::Loaded { model: m, backend: b, adapter, note } => {
            let (l, h) = (layer.get_untracked().min(m.n_layer - 1), head.get_untracked().min(m.n_head - 1));
            layer.set(l);
            head.set(h);
            model.set(Some(m));
            backend.set(Some((b, adapter, note)));
            if phase.get_untracked() == Phase::LoadingModel || phase.get_untracked() == Phase::Error {
                phase.set(Phase::Ready);
            }
            if pending_run.get_value() {
                pending_run.set_value(false);
                start_run();
            }
        }
        Response::Result { run: r } => {
            let r = *r;
            let key = format!("{}.{}", r.map.layer, r.map.head);
            rows.set(r.report.attention.get(&key).cloned());
            map.set(Some(r.map.clone()));
            query.set(Some(r.report.ids.len().saturating_sub(1)));
            run.set(Some(r));
            phase.set(Phase::Done);
            if view_sel.get_untracked() == View::Model {
                send(Request::Thumbs { side: 24, slot: 0 });
            }
        }
        Response::Head { map: m, exact_rows } => {
            // A whole-map answer replaces the exported rows (None for long inputs); a zoomed
            // region leaves them as they are.
            if m.rows == (0, m.n_tokens) && m.cols == (0, m.n_tokens) {
                rows.set(exact_rows);
            }
            map.set(Some(m));
            phase.set(Phase::Done);
        }
        Response::Thumbs { thumbs: t } => thumbs.set(Some(t)),
        Response::Error { phase: p, message } => {
            if p == "experiment" {
                exp_progress.set(None);
            }
            error.set(Some(format!("{p}: {message}")));
            phase.set(Phase::Error);
        }
    };

    // Start the worker and load the model.
    let base = engine::resolve(&asset_base.unwrap_or_default(), &page_base());
    let from_url = url.model.as_deref().and_then(|id| MODELS.iter().find(|m| m.0 == id)).map(|m| m.2.to_string());
    let model_url = engine::resolve(&model_url.or(from_url).unwrap_or_else(|| DEFAULT_MODEL_URL.to_string()), &base);
    let picked = model_id(&model_url);
    match Client::spawn(&base, move |_, r| on_response(r)) {
        Ok(c) => {
            c.send(&Request::LoadUrl { url: model_url.clone() });
            client.set_value(Some(c));
        }
        Err(e) => {
            error.set(Some(e));
            phase.set(Phase::Error);
        }
    }

    let base_for_dialog = base.clone();
    // The lost-in-the-middle tab opens with a shipped result until the reader runs their own.
    {
        let url = format!("{base}{}", experiment::SHIPPED_POSITION);
        leptos::task::spawn_local(async move {
            if let Ok(o) = shipped_outcome(&url).await {
                if exp_outcome.get_untracked().is_none() {
                    exp_outcome.set(Some(o));
                }
            }
        });
    }

    // Contract: state and backend on <html>, the URL, window.attnlab.exportJson().
    Effect::new(move |_| set_root_data("data-attnlab-state", phase.get().as_str()));
    Effect::new(move |_| {
        if let Some((b, _, _)) = backend.get() {
            set_root_data("data-attnlab-backend", &b);
        }
    });
    Effect::new(move |_| write_url(&text.get(), layer.get(), head.get(), view_sel.get()));
    {
        let export = Closure::<dyn Fn() -> JsValue>::new(move || match run.get_untracked() {
            Some(r) => JsValue::from_str(&export_json(&r, rows.get_untracked().as_ref(), layer.get_untracked(), head.get_untracked())),
            None => JsValue::NULL,
        });
        let api = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&api, &"exportJson".into(), export.as_ref());
        export.forget();
        if let Some(w) = web_sys::window() {
            let _ = js_sys::Reflect::set(&w, &"attnlab".into(), &api);
        }
    }

    // Opening or dropping another GGUF file.
    let load_file = move |file: web_sys::File| {
        let name = file.name();
        phase.set(Phase::LoadingModel);
        progress.set(("open".into(), 0.0, Some(file.size())));
        leptos::task::spawn_local(async move {
            match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(buf) => client.with_value(|c| {
                    if let Some(c) = c {
                        c.send_with_bytes(&Request::LoadBytes { name }, Some(buf.unchecked_into()));
                    }
                }),
                Err(e) => {
                    error.set(Some(format!("cannot read {name}: {e:?}")));
                    phase.set(Phase::Error);
                }
            }
        });
    };
    let on_file = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(f) = input.files().and_then(|l| l.get(0)) {
            load_file(f);
        }
        input.set_value("");
    };
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        if let Some(f) = ev.data_transfer().and_then(|d| d.files()).and_then(|l| l.get(0)) {
            load_file(f);
        }
    };

    let tokens = Signal::derive(move || run.with(|r| r.as_ref().map(|r| r.report.tokens.clone()).unwrap_or_default()));
    let query_row = Signal::derive(move || {
        let q = query.get()?;
        rows.with(|r| r.as_ref().and_then(|r| r.get(q).cloned()))
    });
    let open_head = Callback::new(move |(l, h): (usize, usize)| {
        layer.set(l);
        head.set(h);
        view_sel.set(View::Head);
        request_head(None);
    });
    let on_zoom = Callback::new(move |rc: ((usize, usize), (usize, usize))| request_head(Some(rc)));
    let set_layer_head = move |l: Option<usize>, h: Option<usize>| {
        let Some(m) = model.get_untracked() else { return };
        if let Some(l) = l {
            layer.set(l.min(m.n_layer - 1));
        }
        if let Some(h) = h {
            head.set(h.min(m.n_head - 1));
        }
        request_head(None);
    };
    let choose_view = move |v: View| {
        view_sel.set(v);
        if v == View::Model && thumbs.get_untracked().is_none() && run.get_untracked().is_some() {
            send(Request::Thumbs { side: 24, slot: 0 });
        }
    };
    if url.run {
        start_run();
    }

    view! {
        <div class="attnlab" on:dragover=|ev: web_sys::DragEvent| ev.prevent_default() on:drop=on_drop>
            <header class="top">
                <div>
                    <h1>"attnlab"</h1>
                    <p class="lede">"Where does each attention head of a real language model look? It runs here, in your browser."</p>
                </div>
                <div class="model-status">
                    {move || backend.get().map(|(b, adapter, note)| view! {
                        <span class="badge" class:cpu=b == "cpu" title=adapter.clone()>{if b == "webgpu" { "WebGPU" } else { "CPU" }}" · "{adapter.clone()}</span>
                        {note.map(|n| view! { <span class="note">{n}</span> })}
                    })}
                    <a class="lesson-link" href="lesson.html">"For teachers: lesson & embeds"</a>
                    <button class="embed-button" on:click=move |_| embed_open.set(true) aria-haspopup="dialog">"Embed"</button>
                    <label class="model-picker">"Model "
                        <select on:change=move |ev| { let v = event_target_value(&ev); if !v.is_empty() { switch_model(&v) } }>
                            {MODELS.iter().map(|(id, label, _)| view! { <option value=*id selected=*id == picked>{*label}</option> }).collect_view()}
                            {(picked.is_empty()).then(|| view! { <option value="" selected=true>"Your GGUF file"</option> })}
                        </select>
                    </label>
                    <label class="file-button">"Open GGUF…"<input type="file" accept=".gguf" on:change=on_file/></label>
                </div>
            </header>
            {move || (phase.get() == Phase::LoadingModel).then(|| {
                let (p, done, total) = progress.get();
                let pct = total.map(|t| done / t.max(1.0) * 100.0).unwrap_or(0.0);
                let label = match p.as_str() { "cache" => "Loading the model from the browser cache", "parse" => "Reading the model", "upload" => "Uploading weights to the GPU", "open" => "Opening the file", _ => "Downloading the model" };
                view! {
                    <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{pct:.0}")>
                        <div class="bar" style=format!("width:{pct:.1}%")></div>
                        <span>{format!("{label}: {:.1} MB{}", done / 1e6, total.map(|t| format!(" of {:.1} MB", t / 1e6)).unwrap_or_default())}</span>
                    </div>
                }
            })}
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <section class="input">
                <label for="attnlab-text">"Text"</label>
                <textarea id="attnlab-text" rows="3" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))
                    on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) { start_run() }></textarea>
                <div class="controls">
                    <button class="primary" on:click=move |_| start_run() disabled=move || matches!(phase.get(), Phase::Running | Phase::LoadingModel)>
                        {move || if phase.get() == Phase::Running { "Running…" } else { "Run" }}
                    </button>
                    <label>"Layer "<input type="number" min="0" max=move || model.get().map(|m| m.n_layer - 1).unwrap_or(0) prop:value=move || layer.get()
                        on:change=move |ev| set_layer_head(event_target_value(&ev).parse().ok(), None)/></label>
                    <label>"Head "<input type="number" min="0" max=move || model.get().map(|m| m.n_head - 1).unwrap_or(0) prop:value=move || head.get()
                        on:change=move |ev| set_layer_head(None, event_target_value(&ev).parse().ok())/></label>
                    <span class="muted">{move || model.get().map(|m| format!("KV head {} of {}", head.get() / (m.n_head / m.n_kv_head.max(1)).max(1), m.n_kv_head))}</span>
                    <span class="muted layer-kind">{move || model.get().map(|m| layer_kind(&m, layer.get()))}</span>
                </div>
            </section>
            {move || run.get().map(|r| {
                let t = &r.report.timings_ms;
                view! {
                    <p class="timings">{format!("{} tokens · tokenize {:.1} ms · forward {:.0} ms · maps {:.0} ms", r.report.ids.len(), t.tokenize, t.forward, t.analysis)}</p>
                    <p class="next">"Next token: "{r.next_tokens.iter().take(5).map(|(t, p)| view! { <code>{format!("{t:?}")}</code><span>{format!(" {:.1}%  ", p * 100.0)}</span> }).collect_view()}</p>
                }
            })}
            <TokenStrip tokens=tokens query=query row=query_row/>
            <nav class="tabs" role="tablist">
                {[View::Head, View::Model, View::Sinks, View::Position].into_iter().map(|v| view! {
                    <button role="tab" aria-selected=move || (view_sel.get() == v).to_string() class:active=move || view_sel.get() == v on:click=move |_| choose_view(v)>
                        {match v { View::Head => "Head", View::Model => "All heads", View::Sinks => "Attention sink", View::Position => "Lost in the middle", View::Tokens => "Tokens" }}
                    </button>
                }).collect_view()}
            </nav>
            <div class="panel" class:hidden=move || view_sel.get() != View::Head>
                <div class="head-title">
                    <strong>{move || format!("Layer {} · head {}", layer.get(), head.get())}</strong>
                    {move || map.get().filter(|m| m.pooled()).map(|m| view! { <span class="muted">{format!(" pooled: {}×{} tokens per cell (max) — click to zoom", m.block_q, m.block_k)}</span> })}
                    {move || map.get().filter(|m| m.rows != (0, m.n_tokens) || m.cols != (0, m.n_tokens)).map(|m| view! {
                        <span class="muted">{format!(" queries {}–{}, keys {}–{} ", m.rows.0, m.rows.1 - 1, m.cols.0, m.cols.1 - 1)}</span>
                        <button on:click=move |_| request_head(None)>"Whole map"</button>
                    })}
                </div>
                <Heatmap map=map tokens=tokens query=query on_zoom=on_zoom canvas_ref=canvas_ref/>
                <div class="exports">
                    <button on:click=move |_| if let (Some(c), Some(m)) = (canvas_ref.get_untracked(), map.get_untracked()) { if let Some(u) = heatmap::png_2x(&c, &m, &tokens.get_untracked(), query.get_untracked()) { download_url(&format!("attnlab-L{}-H{}.png", m.layer, m.head), &u) } }>"PNG (2×)"</button>
                    <button on:click=move |_| if let Some(m) = map.get_untracked() { download(&format!("attnlab-L{}-H{}.csv", m.layer, m.head), "text/csv", &map_csv(&m, &tokens.get_untracked())) }>"CSV"</button>
                    <button on:click=move |_| if let Some(r) = run.get_untracked() { download("attnlab.json", "application/json", &export_json(&r, rows.get_untracked().as_ref(), layer.get_untracked(), head.get_untracked())) }>"JSON"</button>
                </div>
            </div>
            <div class="panel" class:hidden=move || view_sel.get() != View::Model>
                {move || model.get().map(|m| view! { <ModelView thumbs=thumbs n_head=m.n_head n_kv_head=m.n_kv_head current=Signal::derive(move || (layer.get(), head.get())) on_open=open_head/> })}
            </div>
            <div class="panel" class:hidden=move || view_sel.get() != View::Sinks>
                <SinkPanel
                    sink=Signal::derive(move || run.with(|r| r.as_ref().map(|r| r.report.sink_mass_key0.clone()).unwrap_or_default()))
                    per_layer=Signal::derive(move || run.with(|r| r.as_ref().map(|r| r.sink_per_layer.clone()).unwrap_or_default()))
                    baseline=Signal::derive(move || run.with(|r| r.as_ref().map(|r| r.sink_uniform_baseline).unwrap_or(0.0)))
                    on_open=open_head/>
            </div>
            <div class="panel" class:hidden=move || view_sel.get() != View::Position>
                <LostInTheMiddle
                    on_start=Callback::new(move |e| { exp_progress.set(Some((0.0, 1.0))); error.set(None); send(Request::Experiment { experiment: e }) })
                    on_cancel=Callback::new(move |_| send(Request::Cancel))
                    progress=exp_progress
                    outcome=exp_outcome
                    ready=Signal::derive(move || model.get().is_some())
                    canvas_ref=exp_canvas/>
                <div class="exports" class:hidden=move || exp_outcome.get().is_none()>
                    <button on:click=move |_| if let Some(o) = exp_outcome.get_untracked() { download("attnlab-position.csv", "text/csv", &outcome_csv(&o)) }>"CSV"</button>
                    <button on:click=move |_| if let Some(o) = exp_outcome.get_untracked() { if let Some(u) = experiment::attention_png_2x(&o) { download_url("attnlab-position-attention.png", &u) } }>"PNG (2×)"</button>
                </div>
            </div>
            {move || embed_open.get().then(|| view! {
                <EmbedDialog text=text.get_untracked() layer=layer.get_untracked() head=head.get_untracked() view=view_sel.get_untracked().as_str() base=base_for_dialog.clone()
                    figure=Signal::derive(move || run.get().map(|r| export_json(&r, rows.get().as_ref(), layer.get(), head.get())))
                    on_close=Callback::new(move |_| embed_open.set(false))/>
            })}
            <footer class="muted">"Drop a Llama-family GGUF file anywhere on the page to load it. Ctrl+Enter runs."</footer>
        </div>
    }
}

/// Mounts the playground into `element` (for course pages embedding it). `asset_base` is
/// where the worker script and the model live, ending in `/`.
#[wasm_bindgen(js_name = mountPlayground)]
pub fn mount_playground(element: web_sys::HtmlElement, asset_base: Option<String>) {
    let base = asset_base.unwrap_or_default();
    leptos::mount::mount_to(element, move || view! { <Playground asset_base=base.clone()/> }).forget();
}
