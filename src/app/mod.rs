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
mod compare;
mod cost;
mod effect;
mod embed_dialog;
mod engine;
mod experiment;
mod fetch;
mod generate;
mod heatmap;
mod inside;
mod knockout;
mod lens;
mod minilab;
mod patterns;
mod panels;
mod similarity;
mod state;
mod streaming;
mod through;
mod tour_view;
mod views;
mod vectors;
mod widget;
mod write_on;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::worker::protocol::{HeadMap, ModelSummary, RunResult, MASKED};
use engine::page_base;
use experiment::shipped_outcome;
use panels::TokenStrip;
use state::Page;
use views::{AllHeadsView, EmbedView, Header, HeadView, InputBar, PositionView, SinkView, Status, Tabs};

/// The default model inside the built site (Trunk copies `models/` into `dist/`).
pub const DEFAULT_MODEL_URL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The models the picker offers: (`?model=` id, label, URL inside the site).
pub const MODELS: [(&str, &str, &str); 2] = [
    ("smollm2", "SmolLM2-135M-Instruct (GQA: 9 query heads, 3 KV heads)", DEFAULT_MODEL_URL),
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

/// A layer or head number typed in a box, made valid in the box itself: below 0 → 0, beyond
/// the model → its last (`count`: layers or heads, when known), not a number → what was there.
pub fn corrected(ev: &web_sys::Event, current: usize, count: Option<usize>) -> usize {
    let input: web_sys::HtmlInputElement = event_target(ev);
    let typed = input.value().trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let max = count.map(|c| c.saturating_sub(1) as f64).unwrap_or(f64::MAX);
    let n = typed.map(|v| v.round().clamp(0.0, max) as usize).unwrap_or(current);
    input.set_value(&n.to_string());
    n
}

/// A round axis value at or above `v` (1, 2 or 5 × a power of ten): axis maxima and tick steps.
pub fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|&c| c >= v).unwrap_or(10.0 * p)
}

/// A view's tab label.
pub fn tab_name(v: View) -> &'static str {
    match v {
        View::Head => "Head",
        View::Model => "All heads",
        View::Sinks => "Attention sink",
        View::Position => "Lost in the middle",
        View::Tokens => "Tokens",
        View::Lab => "From scratch",
        View::Patterns => "Head patterns",
        View::Cost => "Cost of attention",
        View::Generate => "The model writes",
        View::Lens => "Layer by layer",
        View::Inside => "Inside one head",
        View::Similarity => "How alike the heads are",
        View::KnockOut => "Knock heads out",
        View::Streaming => "Why sinks matter",
        View::Vectors => "A word through the layers",
        View::Qk => "Queries and keys",
        View::Compare => "Two texts",
    }
}

/// A model's attention layout in plain words: every head its own keys (multi-head), groups
/// of query heads sharing keys (grouped-query) or all sharing one (multi-query).
pub fn heads_words(n_head: usize, n_kv: usize) -> String {
    match n_kv {
        k if k == n_head => format!("{n_head} heads, each with its own keys (MHA)"),
        1 => format!("{n_head} query heads sharing one key head (MQA)"),
        k => format!("{n_head} query heads sharing {k} key heads (GQA)"),
    }
}

/// Where the model runs, in plain words (the adapter's details go in a tooltip).
pub fn backend_words(backend: &str) -> &'static str {
    if backend == "webgpu" {
        "Running on your graphics card (WebGPU)"
    } else {
        "Running on your CPU (fast WebAssembly)"
    }
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
/// Longest text kept in the page's URL, in bytes.
pub const URL_TEXT_MAX: usize = 16_000;
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
    /// Attention from scratch on a toy vocabulary.
    Lab,
    /// Every head scored by pattern.
    Patterns,
    /// The cost of attention against n, and the KV cache.
    Cost,
    /// The model writes (embedded widgets; the playground shows it under the text).
    Generate,
    /// What each layer predicts (the logit lens).
    Lens,
    /// One query's row step by step (the playground shows it under the head's map).
    Inside,
    /// A long text through four KV caches (in the playground's attention sink tab).
    Streaming,
    /// Every pair of heads compared (in the playground's head patterns tab).
    Similarity,
    /// Heads knocked out and what the model then gets wrong (in the head patterns tab).
    KnockOut,
    /// One word in two texts, layer by layer (in the playground's layer-by-layer tab).
    Vectors,
    /// One head's queries and keys as points (in the playground's head tab).
    Qk,
    /// Two texts side by side: the same head on both, the heads that change most.
    Compare,
}

impl View {
    fn as_str(self) -> &'static str {
        match self {
            View::Head => "head",
            View::Model => "model",
            View::Sinks => "sinks",
            View::Position => "position",
            View::Tokens => "tokens",
            View::Lab => "lab",
            View::Patterns => "patterns",
            View::Cost => "cost",
            View::Generate => "generate",
            View::Lens => "lens",
            View::Inside => "inside",
            View::Similarity => "similarity",
            View::KnockOut => "knockout",
            View::Streaming => "streaming",
            View::Vectors => "vectors",
            View::Qk => "qk",
            View::Compare => "compare",
        }
    }
    /// Every view by its URL name (`None`: not a view).
    fn parse(s: &str) -> Option<View> {
        Some(match s {
            "head" => View::Head,
            "model" => View::Model,
            "sinks" => View::Sinks,
            "position" => View::Position,
            "tokens" => View::Tokens,
            "lab" => View::Lab,
            "patterns" => View::Patterns,
            "cost" => View::Cost,
            "generate" => View::Generate,
            "lens" => View::Lens,
            "inside" => View::Inside,
            "similarity" => View::Similarity,
            "knockout" => View::KnockOut,
            "streaming" => View::Streaming,
            "vectors" => View::Vectors,
            "qk" => View::Qk,
            "compare" => View::Compare,
            _ => return None,
        })
    }

    /// The playground's tab that holds this view.
    fn tab(self) -> View {
        match self {
            // The head tab holds the token strip and the model's writing too.
            View::Inside | View::Tokens | View::Generate | View::Qk => View::Head,
            View::Vectors => View::Lens,
            View::Similarity | View::KnockOut => View::Patterns,
            View::Streaming => View::Sinks,
            v => v,
        }
    }
}

/// State read from the page URL.
struct UrlState {
    text: Option<String>,
    layer: usize,
    head: usize,
    view: View,
    /// Run once the model is loaded: always, unless `?run=0` (the page never opens empty).
    run: bool,
    /// `?q=`: the query token whose row is picked (default: the last token).
    query: Option<usize>,
    /// `?k=`: the key token heads are ranked by (all heads).
    key: Option<usize>,
    /// `?model=smollm2|gemma3`.
    model: Option<String>,
    /// `?scale=`, `?palette=`, `?sink=hide`, `?whatif=`: how maps are drawn.
    style: heatmap::MapStyle,
    /// `?through=unscaled|dmodel|unmasked|norope|nosink&through_layers=all|L|A-B`: a what-if
    /// through the model, in those layers.
    through: Option<(crate::model::arch::AttnChange, String)>,
    /// `?first=`, `?second=` for the two texts compared.
    compare: (String, String),
    /// `?view=qk`: the head tab with its queries and keys as points.
    qk: bool,
    /// `?first=`, `?second=`, `?word=`: a word through the layers.
    pair: (String, String, String),
    /// `?ablate=L.H,L.*`: heads knocked out.
    ablate: Option<String>,
    /// `?backend=webgpu|cpu`.
    backend: crate::worker::protocol::BackendChoice,
    /// `?gen=N&temperature=…&top_k=…&top_p=…&seed=…&chat=1`: the model writes N tokens.
    gen: crate::generate::GenSettings,
    gen_asked: Option<usize>,
    /// What in the URL could not be used as written (shown once, never fatal).
    warnings: Vec<String>,
    /// `layer` and `head` as asked (checked against the model once it is loaded).
    asked: (Option<usize>, Option<usize>),
}

/// The what-if through the model that checked settings ask for (`through`, `through-layers`).
pub fn through_of(s: &crate::settings::Restore) -> Option<(crate::model::arch::AttnChange, String)> {
    let what = crate::model::arch::AttnChange::parse(s.get("through")?)?;
    Some((what, s.get("through-layers").unwrap_or("all").to_string()))
}

fn read_url() -> UrlState {
    let params = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok());
    let get = |k: &str| params.as_ref().and_then(|p| p.get(k));
    // Every figure setting read and checked as a widget's attributes are.
    let s = crate::settings::read(&get, &crate::settings::PAGE_PARAMS);
    let warnings: Vec<String> = s.dropped.iter().map(|d| format!("{d}; the default is used")).collect();
    let (layer, head) = (s.number("layer"), s.number("head"));
    let (gen, gen_asked) = crate::generate::GenSettings::from_settings(&s);
    // The playground opens the tab that holds a widget's view.
    let view = s.get("view").and_then(View::parse).map(View::tab).unwrap_or(View::Head);
    UrlState {
        qk: s.get("view") == Some("qk"),
        gen,
        gen_asked,
        text: s.get("text").map(String::from),
        layer: layer.unwrap_or(0),
        head: head.unwrap_or(0),
        view,
        run: s.get("run") != Some("0"),
        query: s.number("query"),
        key: s.number("k"),
        model: get("model"),
        style: heatmap::MapStyle::of(&s),
        ablate: s.get("ablate").map(String::from),
        through: through_of(&s),
        pair: vectors::pair_of(&s),
        compare: compare::texts_of(&s),
        backend: crate::worker::protocol::BackendChoice::parse(s.get("backend").unwrap_or_default()),
        warnings,
        asked: (layer, head),
    }
}

#[allow(clippy::too_many_arguments)]
fn write_url(text: &str, layer: usize, head: usize, (query, key): (Option<usize>, Option<usize>), view: View, style: heatmap::MapStyle, extra: &[(&str, String)], gen: Option<crate::generate::GenSettings>) {
    let Some(w) = web_sys::window() else { return };
    let Ok(p) = web_sys::UrlSearchParams::new() else { return };
    // A whole chapter does not go into the address bar (browsers cap URLs at ~2 MB, and it is
    // rewritten on every keystroke); the page says so under the text.
    if text.len() <= URL_TEXT_MAX {
        p.append("text", text);
    }
    p.append("layer", &layer.to_string());
    p.append("head", &head.to_string());
    if let Some(q) = query {
        p.append("q", &q.to_string());
    }
    if let Some(k) = key {
        p.append("k", &k.to_string());
    }
    p.append("view", view.as_str());
    p.append("scale", style.colour.as_str());
    if style.palette != heatmap::Palette::Blues {
        p.append("palette", style.palette.as_str());
    }
    if style.hide_sink {
        p.append("sink", "hide");
    }
    if let Some(w) = style.what_if.param() {
        p.append("whatif", w);
    }
    // Heads knocked out, a what-if through the model.
    for (k, v) in extra.iter().filter(|(_, v)| !v.is_empty()) {
        p.append(k, v);
    }
    // A generation on screen: its settings, so the link writes the same text.
    for (k, v) in gen.map(|g| g.params()).unwrap_or_default() {
        p.append(k, &v);
    }
    // Keep the model and backend choices.
    let current = w.location().search().ok().and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok());
    for key in ["model", "backend", "simd"] {
        if let Some(v) = current.as_ref().and_then(|c| c.get(key)) {
            p.append(key, &v);
        }
    }
    // Only when it changes: the effect that calls this runs on every streamed token, and each
    // replaceState costs the browser ~5 ms (the main thread then competes with the worker).
    let search = String::from(p.to_string());
    if w.location().search().ok().as_deref().map(|s| s.strip_prefix('?').unwrap_or(s)) == Some(search.as_str()) {
        return;
    }
    let path = w.location().pathname().unwrap_or_default();
    let _ = w.history().and_then(|h| h.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}?{search}"))));
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
        report.attention = [(crate::analysis::HeadId::key(layer, head), rows.clone())].into_iter().collect();
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
    if single_figure_redirect() {
        return ().into_any();
    }
    view! { <Playground/> }.into_any()
}

/// `?tour=` and `?present=`: a guided tour and a projector show one view at a time, so they
/// open the single-figure page (`embed.html`, beside this one) with the same settings. Whether
/// the page is leaving.
fn single_figure_redirect() -> bool {
    let Some(w) = web_sys::window() else { return false };
    let Ok(p) = web_sys::UrlSearchParams::new_with_str(&w.location().search().unwrap_or_default()) else { return false };
    if p.get("tour").is_none() && p.get("present").is_none() {
        return false;
    }
    // The playground writes the query token as `q`; the element's attribute is `query`.
    if let Some(q) = p.get("q") {
        p.delete("q");
        p.set("query", &q);
    }
    w.location().replace(&format!("embed.html?{}", String::from(p.to_string()))).is_ok()
}

/// The playground: shared state ([`state::Page`]) provided to one component per view.
#[component]
pub fn Playground(
    /// URL of the GGUF model to load (default: `?model=`, else the bundled SmolLM2-135M).
    #[prop(optional, into)]
    model_url: Option<String>,
    /// Where the worker script lives (a prefix ending in `/`; default: next to the page).
    #[prop(optional, into)]
    asset_base: Option<String>,
) -> impl IntoView {
    let url = read_url();
    let p = Page::new(url.text.clone().unwrap_or_else(|| EXAMPLE.to_string()), url.layer, url.head, url.view, url.run, url.style, url.ablate.clone(), url.gen);
    provide_context(p);
    provide_context(p.look);
    provide_context(p.writer());

    // Start the worker and load the model.
    let base = engine::resolve(&asset_base.unwrap_or_default(), &page_base());
    let from_url = url.model.as_deref().and_then(|id| MODELS.iter().find(|m| m.0 == id)).map(|m| m.2.to_string());
    let model_url = engine::resolve(&model_url.or(from_url).unwrap_or_else(|| DEFAULT_MODEL_URL.to_string()), &base);
    let picked = model_id(&model_url);
    let embed_model = (!model_url.ends_with(DEFAULT_MODEL_URL)).then(|| model_url.clone());
    p.backend_choice.set_value(url.backend);
    let backend_param = match url.backend {
        crate::worker::protocol::BackendChoice::Auto => None,
        b => Some(b.as_str().to_string()),
    };
    p.set_url_warnings(url.warnings.clone(), url.asked);
    p.asked_query.set_value(url.query);
    p.through.set(url.through.clone());
    p.pair.set(url.pair.clone());
    p.compare_texts.set(url.compare.clone());
    p.show_qk.set(url.qk);
    p.key.set(url.key);
    p.start(&base, model_url);

    // The lost-in-the-middle tab opens with a shipped result until the reader runs their own.
    {
        let url = format!("{base}{}", experiment::SHIPPED_POSITION);
        leptos::task::spawn_local(async move {
            if let Ok(o) = shipped_outcome(&url).await {
                if p.exp_outcome.get_untracked().is_none() {
                    p.exp_outcome.set(Some(o));
                }
            }
        });
    }

    // Contract: state and backend on <html>, the URL, window.attnlab.exportJson().
    Effect::new(move |_| set_root_data("data-attnlab-state", p.phase.get().as_str()));
    Effect::new(move |_| {
        if let Some((b, _, _)) = p.backend.get() {
            set_root_data("data-attnlab-backend", &b);
        }
    });
    Effect::new(move |_| {
        let n_head = p.model.with(|m| m.as_ref().map(|m| m.n_head).unwrap_or(usize::MAX));
        let ablate = crate::analysis::heads::heads_spec(&p.knocked.get(), n_head);
        // The query token is written only when it is not the default (the last token).
        let last = p.run.with(|r| r.as_ref().map(|r| r.report.ids.len().saturating_sub(1)));
        let q = p.query.get().filter(|q| Some(*q) != last);
        let gen = p.generation.with(|g| g.is_some()).then(|| p.gen.get());
        let (through, layers) = p.through.get().map(|(w, l)| (w.name().to_string(), l)).unwrap_or_default();
        // The word through the layers, or the two texts compared, when not the defaults.
        let ((first, second, word), (df, ds, dw)) = if p.view.get() == View::Compare {
            let ((a, b), (da, db)) = (p.compare_texts.get(), compare::default_texts());
            ((a, b, String::new()), (da, db, String::new()))
        } else {
            (p.pair.get(), vectors::default_pair())
        };
        let keep = |v: String, d: String| if v == d { String::new() } else { v };
        let extra = [("ablate", ablate), ("through", through), ("through_layers", layers), ("first", keep(first, df)), ("second", keep(second, ds)), ("word", keep(word, dw))];
        let view = if p.view.get() == View::Head && p.show_qk.get() { View::Qk } else { p.view.get() };
        write_url(&p.text.get(), p.layer.get(), p.head.get(), (q, p.key.get()), view, p.look.style(), &extra, gen);
    });
    {
        let export = Closure::<dyn Fn() -> JsValue>::new(move || p.export().map(|j| JsValue::from_str(&j)).unwrap_or(JsValue::NULL));
        let api = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&api, &"exportJson".into(), export.as_ref());
        export.forget();
        // The chosen query's row in every head ({query, rows: {"L.H": row}}), once All heads has it.
        let rows = Closure::<dyn Fn() -> JsValue>::new(move || {
            let n_head = p.model.with_untracked(|m| m.as_ref().map(|m| m.n_head)).unwrap_or(1);
            p.query_rows.with_untracked(|r| r.as_ref().map(|(q, rows)| {
                let by_head: std::collections::BTreeMap<String, &Vec<f32>> = rows.iter().enumerate().map(|(i, r)| (crate::analysis::HeadId::key(i / n_head, i % n_head), r)).collect();
                JsValue::from_str(&serde_json::json!({ "query": q, "rows": by_head }).to_string())
            })).unwrap_or(JsValue::NULL)
        });
        let _ = js_sys::Reflect::set(&api, &"exportQueryRows".into(), rows.as_ref());
        rows.forget();
        // The cache policies' comparison shown ({ids, window, sinks, policies, shipped}).
        let streaming = Closure::<dyn Fn() -> JsValue>::new(move || {
            p.streaming.with_untracked(|s| s.as_ref().map(|v| {
                let mut j = serde_json::to_value(&v.streaming).unwrap_or_default();
                j["shipped"] = serde_json::Value::Bool(v.shipped);
                JsValue::from_str(&j.to_string())
            })).unwrap_or(JsValue::NULL)
        });
        let _ = js_sys::Reflect::set(&api, &"exportStreaming".into(), streaming.as_ref());
        streaming.forget();
        if let Some(w) = web_sys::window() {
            let _ = js_sys::Reflect::set(&w, &"attnlab".into(), &api);
        }
    }

    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        if let Some(f) = ev.data_transfer().and_then(|d| d.files()).and_then(|l| l.get(0)) {
            p.load_file(f);
        }
    };
    // A token picked in the strip (or a new run) explains that query's row, and in All heads
    // fetches its row in every head.
    Effect::new(move |_| {
        p.query.track();
        p.request_explain();
        p.request_query_rows();
    });
    let query_row = Signal::derive(move || {
        let q = p.query.get()?;
        p.rows.with(|r| r.as_ref().and_then(|r| r.get(q).cloned()))
    });
    if url.run && url.gen_asked.is_some() {
        p.start_generate(vec![]);
    } else if url.run {
        p.start_run();
    }

    view! {
        <div class="attnlab" on:dragover=|ev: web_sys::DragEvent| ev.prevent_default() on:drop=on_drop>
            <Header picked=picked/>
            <Status/>
            <InputBar/>
            <generate::GenerationPanel/>
            <TokenStrip tokens=p.tokens() query=p.query row=query_row/>
            <Tabs/>
            <HeadView/>
            <AllHeadsView/>
            <SinkView base=base.clone()/>
            <PositionView/>
            <div class="panel" class:hidden=move || p.view.get() != View::Lab><minilab::MiniLab/></div>
            <div class="panel" class:hidden=move || p.view.get() != View::Patterns><patterns::PatternsView/></div>
            <div class="panel" class:hidden=move || p.view.get() != View::Cost><cost::CostView/></div>
            <lens::LensPanel/>
            <div class="panel" class:hidden=move || p.view.get() != View::Compare><compare::ComparePanel/></div>
            <EmbedView base=base.clone() model_src=embed_model backend=backend_param/>
            <footer class="muted">"Drop a GGUF file (Llama family or Gemma 3) anywhere on the page to load it. Ctrl+Enter runs."</footer>
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
