//! The worker's wasm glue: receives requests, fetches the model (with progress, through the
//! Cache API so a second visit needs no network), picks WebGPU or the CPU, and answers.
//! Requests are handled one at a time, in arrival order; a newer run replaces queued ones, a
//! new model drops what was queued for the old one.
#![deny(clippy::await_holding_refcell_ref)]

use crate::analysis::explain::MapView;
use crate::flows::{self, Progress};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{ArrayBuffer, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::protocol::{BackendChoice, GenSummary, GenToken, Request, Response};
use crate::generate::{Decoder, GenOptions, Generator};
use crate::model::tokenizer::Token;
use super::session::{summary, Session};
use super::wire;
use crate::backends::engine::{Engine, SELF_CHECK_TEXT};
use crate::backends::gpu::adapter::{classify, software_note, AdapterKind};
use crate::backends::gpu::context::GpuContext;
use crate::backends::gpu::GpuBackend;
use crate::util::Clock;
use crate::Model;

const CACHE_NAME: &str = "attnlab-models-v1";
/// The CPU engine as the badge names it: which of the two worker builds is running.
const CPU_ADAPTER: &str = if cfg!(target_feature = "relaxed-simd") { "CPU (WebAssembly SIMD128 + relaxed FMA, one thread)" } else { "CPU (WebAssembly SIMD128, one thread)" };

thread_local! {
    /// Set by a `Cancel` message (or a new model); checked between experiment trials.
    static CANCEL: Cell<bool> = const { Cell::new(false) };
    /// The id of the request being handled: every answer carries it.
    static CURRENT_ID: Cell<f64> = const { Cell::new(0.0) };
    /// The id of the newest `Run` of each slot: an older run's result is never built.
    static LATEST_RUN: RefCell<HashMap<u32, f64>> = RefCell::new(HashMap::new());
    /// The long job under way ("experiment", "cost sweep"), which a run arriving waits for.
    static LONG_JOB: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Lets the worker's event loop deliver messages (a cancel) between trials.
async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
    });
    let _ = JsFuture::from(promise).await;
}

/// What the worker holds between requests. No `RefCell` borrow of it is ever held across an
/// `.await` (clippy's `await_holding_refcell_ref` is denied below): a request takes its
/// model and engine out as shared handles, awaits, then borrows again to finish.
#[derive(Default)]
struct State {
    session: Option<Session>,
    /// The GPU when the browser has one, with the one GPU→CPU fallback.
    engine: Rc<Engine>,
    /// Why the CPU runs instead of WebGPU, when it does.
    note: Option<String>,
    gpu_tried: bool,
}

impl State {
    /// The loaded model and the engine, to run a forward pass with no borrow held.
    fn parts(&self) -> Option<(Arc<Model>, Rc<Engine>)> {
        self.session.as_ref().map(|s| (s.model.clone(), self.engine.clone()))
    }

    /// The backend now serving, as the page shows it.
    fn loaded(&self, model: &Model) -> Response {
        let (backend, adapter) = match self.engine.gpu() {
            Some(g) => ("webgpu".to_string(), g.ctx.describe()),
            None => ("cpu".to_string(), CPU_ADAPTER.to_string()),
        };
        Response::Loaded { model: summary(model), backend, adapter, note: self.note.clone() }
    }
}

/// After a forward pass: when the GPU failed and the engine finished on the CPU, say so.
fn report_fallback(state: &Rc<RefCell<State>>, model: &Model) {
    let mut st = state.borrow_mut();
    if let Some(note) = st.engine.take_note() {
        st.note = Some(note);
        post(st.loaded(model));
    }
}

/// Whether `model` is still the loaded one (a new model may have come during an await).
fn still_loaded(state: &Rc<RefCell<State>>, model: &Arc<Model>) -> bool {
    state.borrow().session.as_ref().is_some_and(|s| Arc::ptr_eq(&s.model, model))
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// Answers the request being handled.
fn post(r: Response) {
    post_to(r, CURRENT_ID.with(|c| c.get()))
}

/// Posts `r` answering request `id`, its floats transferred (see [`wire`]).
fn post_to(r: Response, id: f64) {
    let sent = wire::encode(r, id).and_then(|(msg, transfer)| scope().post_message_with_transfer(&msg, &transfer).map_err(js_err));
    if let Err(e) = sent {
        let fallback = Response::Error { phase: "protocol".into(), message: e };
        if let Ok((msg, _)) = wire::encode(fallback, id) {
            let _ = scope().post_message(&msg);
        }
    }
}

fn js_err(e: JsValue) -> String {
    e.as_string().or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()))).unwrap_or_else(|| format!("{e:?}"))
}

fn no_model(phase: &str) -> Response {
    Response::Error { phase: phase.into(), message: "no model is loaded".into() }
}

/// The bytes of the worker's WebAssembly memory (it grows and never shrinks).
fn wasm_memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65_536
}

type Queued = (f64, Request, Option<ArrayBuffer>);

/// What a queued request gets when a new model replaces the one it was for.
fn dropped(req: &Request) -> Response {
    match req {
        Request::Experiment { experiment } => Response::Experiment { experiment: experiment.clone(), rows: vec![], cancelled: true, elapsed_ms: 0.0 },
        Request::Cost { .. } => Response::Cost { rows: vec![], cancelled: true, gpu: None },
        _ => Response::Superseded,
    }
}

/// Starts listening for requests.
pub fn start() {
    console_error_panic_hook::set_once();
    let queue: Rc<RefCell<VecDeque<Queued>>> = Rc::default();
    let busy = Rc::new(Cell::new(false));
    let state = Rc::new(RefCell::new(State::default()));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let data = ev.data();
        let (req, id) = match wire::decode::<Request>(&data) {
            Ok(r) => r,
            Err(e) => {
                let id = Reflect::get(&data, &"id".into()).ok().and_then(|i| i.as_f64()).unwrap_or(0.0);
                return post_to(Response::Error { phase: "protocol".into(), message: e }, id);
            }
        };
        match &req {
            // A cancel must not wait behind the experiment it stops.
            Request::Cancel => return CANCEL.with(|c| c.set(true)),
            // A new run replaces the runs of its slot still waiting in the queue (each gets
            // its answer), and the one in flight finishes without a result.
            Request::Run { slot, .. } | Request::Generate { slot, recompute: false, .. } => {
                LATEST_RUN.with(|l| l.borrow_mut().insert(*slot, id));
                queue.borrow_mut().retain(|(old, r, _)| {
                    let replaced = matches!(r, Request::Run { slot: s, .. } | Request::Generate { slot: s, recompute: false, .. } if s == slot);
                    if replaced {
                        post_to(Response::Superseded, *old);
                    }
                    !replaced
                });
                if let Some(job) = LONG_JOB.with(|j| j.get()) {
                    post_to(Response::Progress { phase: format!("waiting for the {job} to finish (Cancel stops it)"), done: 0.0, total: None }, id);
                }
            }
            // A new model: what was queued for the old one is dropped, a running experiment
            // or sweep stops after its current step.
            Request::LoadUrl { .. } | Request::LoadBytes { .. } => {
                CANCEL.with(|c| c.set(true));
                for (old, r, _) in queue.borrow_mut().drain(..) {
                    post_to(dropped(&r), old);
                }
            }
            _ => {}
        }
        let bytes = Reflect::get(&data, &"bytes".into()).ok().and_then(|b| b.dyn_into::<ArrayBuffer>().ok());
        queue.borrow_mut().push_back((id, req, bytes));
        if busy.get() {
            return;
        }
        busy.set(true);
        let (queue, busy, state) = (queue.clone(), busy.clone(), state.clone());
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let next = queue.borrow_mut().pop_front();
                let Some((id, req, bytes)) = next else { break };
                CURRENT_ID.with(|c| c.set(id));
                handle(&state, req, bytes).await;
            }
            busy.set(false);
        });
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(Response::Ready);
}

/// Answers from the kept captures (no forward pass, nothing awaited).
fn answer(state: &Rc<RefCell<State>>, phase: &str, f: impl FnOnce(&Session) -> Response) {
    let r = state.borrow().session.as_ref().map(f);
    post(r.unwrap_or_else(|| no_model(phase)));
}

async fn handle(state: &Rc<RefCell<State>>, req: Request, bytes: Option<ArrayBuffer>) {
    match req {
        Request::LoadUrl { url, backend } => match fetch_cached(&url).await {
            Ok(b) => load(state, b, backend).await,
            Err(e) => post(Response::Error { phase: "download".into(), message: e }),
        },
        Request::LoadBytes { name, backend } => match bytes {
            Some(b) if b.byte_length() as u64 > super::session::MAX_MODEL_FILE => post(Response::Error { phase: "open".into(), message: format!("{name} is {} MiB, more than the {} MiB the engine can hold", b.byte_length() >> 20, super::session::MAX_MODEL_FILE >> 20) }),
            Some(b) => load(state, Uint8Array::new(&b).to_vec(), backend).await,
            None => post(Response::Error { phase: "open".into(), message: format!("{name}: no bytes arrived") }),
        },
        Request::Run { text, layer, head, max_side, slot, view } => {
            run(state, slot, &text, (layer, head, max_side), view).await;
        }
        Request::Generate { text, ids, max_tokens, sampling, chat, forced, recompute, layer, head, max_side, slot } => {
            let o = GenOptions { max_tokens, sampling, heads: if recompute { vec![] } else { vec![(layer, head)] }, forced, recompute, ..Default::default() };
            generate(state, slot, text, ids, chat, o, (layer, head, max_side)).await
        }
        Request::Explain { layer, head, query, slot } => answer(state, "explain", |s| s.explain(slot, layer, head, query)),
        Request::Head { layer, head, max_side, rows, cols, slot, view } => answer(state, "map", |s| s.head_view(slot, layer, head, max_side, rows, cols, view)),
        Request::Rows { layer, head, slot } => answer(state, "export", |s| s.rows(slot, layer, head)),
        Request::QueryRows { query, slot } => answer(state, "heads", |s| s.query_rows(slot, query)),
        Request::Thumbs { side, slot } => answer(state, "thumbnails", |s| s.thumbs(slot, side)),
        Request::Heads { slot } => answer(state, "heads", |s| s.heads(slot)),
        Request::Similarity { slot } => answer(state, "similarity", |s| s.similarity(slot)),
        Request::Ablate { heads, slot } => run_ablation(state, slot, heads).await,
        Request::WhatIf { what, layers, slot } => run_whatif(state, slot, what, &layers).await,
        Request::Effects { query, slot } => {
            LONG_JOB.with(|j| j.set(Some("head effects")));
            run_effects(state, slot, query).await;
            LONG_JOB.with(|j| j.set(None));
        }
        Request::Lens { slot } => run_lens(state, slot).await,
        Request::Vectors { a, b, word, at } => run_vectors(state, &a, &b, &word, at).await,
        Request::Compare { a, b, layer, head, max_side } => run_compare(state, &a, &b, (layer, head, max_side)).await,
        Request::Qk { layer, head, slot } => answer(state, "queries and keys", |s| s.qk(slot, layer, head)),
        Request::WriteOn { text, variants, max_tokens, slot } => {
            LONG_JOB.with(|j| j.set(Some("writing")));
            write_on(state, slot, text, variants, max_tokens).await;
            LONG_JOB.with(|j| j.set(None));
        }
        Request::Streaming { text, window, sinks } => run_streaming(state, &text, window, sinks).await,
        Request::Induction { period, seed } => run_induction(state, period, seed).await,
        Request::Experiment { experiment } => {
            LONG_JOB.with(|j| j.set(Some("experiment")));
            run_experiment(state, experiment).await;
            LONG_JOB.with(|j| j.set(None));
        }
        Request::Cost { max_n } => {
            LONG_JOB.with(|j| j.set(Some("cost sweep")));
            run_cost(state, max_n).await;
            LONG_JOB.with(|j| j.set(None));
        }
        Request::Cancel => {}
    }
}

/// The flows' progress in the worker: posted to the page; Cancel stops them; between steps
/// the worker yields to its event loop so that a Cancel can arrive.
struct WorkerProgress<'a> {
    state: &'a Rc<RefCell<State>>,
    model: &'a Arc<Model>,
}

impl Progress for WorkerProgress<'_> {
    fn step(&self, phase: &str, done: f64, total: Option<f64>) {
        post(Response::Progress { phase: phase.into(), done, total });
    }
    fn note(&self, note: &str) {
        let mut st = self.state.borrow_mut();
        st.note = Some(note.to_string());
        post(st.loaded(self.model));
    }
    fn cancelled(&self) -> bool {
        CANCEL.with(|c| c.get())
    }
    fn pause(&self) -> impl std::future::Future<Output = ()> {
        yield_now()
    }
}

/// The induction diagnostic on the worker's engine (GPU or CPU).
async fn run_induction(state: &Rc<RefCell<State>>, period: usize, seed: u64) {
    let Some((model, engine)) = state.borrow().parts() else { return post(no_model("induction")) };
    match flows::induction(&engine, &model, period, seed, &WorkerProgress { state, model: &model }).await {
        Ok((induction, t)) => {
            let tokens = induction.ids[..induction.period].iter().map(|&id| model.tokenizer.token_text(id)).collect();
            let maps = Session::induction_maps(&t, &induction.induction, 4);
            post(Response::Induction { induction: Box::new(induction), tokens, maps });
        }
        Err(e) => post(Response::Error { phase: "induction".into(), message: e.to_string() }),
    }
}

/// The last run of `slot` with `heads` knocked out, against the plain pass, on the engine.
async fn run_ablation(state: &Rc<RefCell<State>>, slot: u32, heads: Vec<(usize, usize)>) {
    use super::session::ABLATION_POSITIONS;
    let fail = |m: String| post(Response::Error { phase: "knock-out".into(), message: m });
    let (model, engine, ids) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        let c = &session.model.config;
        if let Some((l, h)) = heads.iter().find(|(l, h)| *l >= c.n_layer || *h >= c.n_head) {
            return fail(format!("layer {l} head {h} is not in this model ({} layers × {} heads)", c.n_layer, c.n_head));
        }
        let Some(ids) = session.run_ids(slot) else { return fail("run a text first".into()) };
        (session.model.clone(), st.engine.clone(), ids)
    };
    let out = flows::ablation(&engine, &model, &ids, &heads, Some(ABLATION_POSITIONS), &WorkerProgress { state, model: &model }).await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    match out {
        Ok((before, after)) => {
            let r = state.borrow_mut().session.as_mut().map(|s| s.finish_ablation(slot, &heads, &before, after));
            post(r.unwrap_or_else(|| no_model("knock-out")));
        }
        Err(e) => fail(e.to_string()),
    }
}

/// Every head knocked out alone on the run of `slot`: Δ log p of the token after `query`.
async fn run_effects(state: &Rc<RefCell<State>>, slot: u32, query: usize) {
    CANCEL.with(|c| c.set(false));
    let fail = |m: String| post(Response::Error { phase: "effects".into(), message: m });
    let (model, engine, ids) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        let Some(ids) = session.run_ids(slot) else { return fail("run a text first".into()) };
        (session.model.clone(), st.engine.clone(), ids)
    };
    let c = &model.config;
    let heads: Vec<(usize, usize)> = (0..c.n_layer).flat_map(|l| (0..c.n_head).map(move |h| (l, h))).collect();
    let out = flows::head_effects(&engine, &model, &ids, query, &heads, &WorkerProgress { state, model: &model }).await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    match out {
        Ok(swept) => post(Response::Effects { query, target: model.tokenizer.token_text(ids[query + 1]), effects: swept.rows, cancelled: swept.cancelled }),
        Err(e) => fail(e),
    }
}

/// The run of `slot` with `what` inside the attention of `layers`, against the plain pass.
async fn run_whatif(state: &Rc<RefCell<State>>, slot: u32, what: crate::model::arch::AttnChange, layers: &str) {
    use super::session::ABLATION_POSITIONS;
    let fail = |m: String| post(Response::Error { phase: "what-if".into(), message: m });
    let (model, engine, ids, range) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        let range = match crate::analysis::through_model::parse_layers(layers, session.model.config.n_layer) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let Some(ids) = session.run_ids(slot) else { return fail("run a text first".into()) };
        (session.model.clone(), st.engine.clone(), ids, range)
    };
    let out = flows::whatif(&engine, &model, &ids, what, range, Some(ABLATION_POSITIONS), &WorkerProgress { state, model: &model }).await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    match out {
        Ok((before, after)) => {
            let r = state.borrow().session.as_ref().map(|s| s.finish_whatif(slot, what, layers, &before, &after));
            post(r.unwrap_or_else(|| no_model("what-if")));
        }
        Err(e) => fail(e.to_string()),
    }
}

/// The model writes after `text` (or the run of `slot`) under each variant, one after the other.
async fn write_on(state: &Rc<RefCell<State>>, slot: u32, text: Option<String>, variants: Vec<crate::generate::Variant>, max_tokens: usize) {
    use super::protocol::{WrittenText, STREAMING_MAX_TOKENS};
    CANCEL.with(|c| c.set(false));
    let fail = |m: String| post(Response::Error { phase: "writing".into(), message: m });
    let (model, engine, mut ids) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        let ids = match &text {
            Some(t) => session.model.tokenizer.encode(t),
            None => match session.run_ids(slot) {
                Some(ids) => ids,
                None => return fail("run a text first".into()),
            },
        };
        (session.model.clone(), st.engine.clone(), ids)
    };
    ids.truncate(STREAMING_MAX_TOKENS.min(model.config.context_length.saturating_sub(max_tokens + 1)));
    let total = variants.len();
    let mut written = vec![];
    let progress = WorkerProgress { state, model: &model };
    let out = flows::write_on(&engine, &model, &ids, &variants, max_tokens, &progress, |v, g| {
        let variant = variants[v];
        let tokens: Vec<super::protocol::GenToken> = g.steps.iter().map(|s| gen_token(&model, s)).collect();
        written.push(WrittenText { variant, name: variant.name(), keys_read: variant.keys_read(ids.len() + g.generated.len() - 2), recompute: variant.needs_recompute(), text_out: g.text_out, tokens });
        post(Response::Written { written: written.clone(), total, cancelled: false });
    })
    .await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    match out {
        Ok(swept) if swept.cancelled => post(Response::Written { written, total, cancelled: true }),
        Ok(_) => {}
        Err(e) => fail(e),
    }
}

/// Two texts side by side: both run with their attention kept, compared head by head.
async fn run_compare(state: &Rc<RefCell<State>>, a: &str, b: &str, (layer, head, max_side): (usize, usize, usize)) {
    use crate::backends::{ForwardOptions, LogitsFor};
    let fail = |m: String| post(Response::Error { phase: "compare".into(), message: m });
    let (model, engine) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        (session.model.clone(), st.engine.clone())
    };
    let (ia, ib) = (model.tokenizer.encode(a), model.tokenizer.encode(b));
    for (ids, which) in [(&ia, "first"), (&ib, "second")] {
        if ids.is_empty() || ids.len() > super::protocol::VECTORS_MAX_TOKENS {
            return fail(format!("the {which} text has {} tokens: write 1 to {}", ids.len(), super::protocol::VECTORS_MAX_TOKENS));
        }
    }
    let opts = ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() };
    let progress = WorkerProgress { state, model: &model };
    progress.step("compare", 0.0, Some(2.0));
    let oa = engine.forward_async(&model, &ia, &opts).await;
    progress.step("compare", 1.0, Some(2.0));
    yield_now().await;
    let ob = engine.forward_async(&model, &ib, &opts).await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    let (oa, ob) = match (oa, ob) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => return fail(e.to_string()),
    };
    let compare = crate::analysis::compare::compare_passes(&model, (&ia, &oa), (&ib, &ob));
    let map = |o: &crate::backends::ForwardOutput| o.trace.as_ref().ok_or_else(|| "the pass kept no attention".to_string()).and_then(|t| super::session::head_map(t, layer, head, max_side, None, None).map_err(|e| e.to_string()));
    match (map(&oa), map(&ob)) {
        (Ok(ma), Ok(mb)) => post(Response::Compare { compare: Box::new(compare), maps: Box::new((ma, mb)) }),
        (Err(e), _) | (_, Err(e)) => fail(e),
    }
}

/// A word through the layers of two texts: `word` in each (or the positions given).
async fn run_vectors(state: &Rc<RefCell<State>>, a: &str, b: &str, word: &str, at: (Option<usize>, Option<usize>)) {
    let fail = |m: String| post(Response::Error { phase: "vectors".into(), message: m });
    let (model, engine) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        (session.model.clone(), st.engine.clone())
    };
    let tok = &model.tokenizer;
    let mut sides = vec![];
    for (text, at, which) in [(a, at.0, "first"), (b, at.1, "second")] {
        let ids = tok.encode(text);
        if ids.is_empty() || ids.len() > super::protocol::VECTORS_MAX_TOKENS {
            return fail(format!("the {which} text has {} tokens: write 1 to {}", ids.len(), super::protocol::VECTORS_MAX_TOKENS));
        }
        let tokens: Vec<String> = ids.iter().map(|&id| tok.token_text(id)).collect();
        let pos = match at {
            Some(p) => p,
            None => match crate::analysis::vectors::find_word(&tokens, word) {
                Some(p) => p,
                None => return fail(format!("“{}” is not a word of the {which} text: pick one of its tokens", word.trim())),
            },
        };
        sides.push((ids, pos));
    }
    let out = flows::word_vectors(&engine, &model, (&sides[0].0, sides[0].1), (&sides[1].0, sides[1].1), &WorkerProgress { state, model: &model }).await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    match out {
        Ok(v) => post(Response::Vectors { vectors: Box::new(v) }),
        Err(e) => fail(e.to_string()),
    }
}

/// The cache policies over `text` (its first [`STREAMING_MAX_TOKENS`] tokens).
async fn run_streaming(state: &Rc<RefCell<State>>, text: &str, window: usize, sinks: usize) {
    use super::protocol::STREAMING_MAX_TOKENS;
    let fail = |m: String| post(Response::Error { phase: "streaming".into(), message: m });
    let (model, engine, mut ids) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        (session.model.clone(), st.engine.clone(), session.model.tokenizer.encode(text))
    };
    ids.truncate(STREAMING_MAX_TOKENS.min(model.config.context_length));
    if window == 0 || ids.len() <= window + 1 {
        return fail(format!("the text has {} tokens: the policies differ only after the window of {window}, so it needs more than {}", ids.len(), window + 1));
    }
    let out = flows::streaming(&engine, &model, &ids, window, sinks, &WorkerProgress { state, model: &model }).await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    match out {
        Ok(s) => {
            let tokens = ids.iter().map(|&id| model.tokenizer.token_text(id)).collect();
            post(Response::Streaming { streaming: Box::new(s), tokens })
        }
        Err(e) => fail(e.to_string()),
    }
}

/// The logit lens of the last run of `slot`, on the engine.
async fn run_lens(state: &Rc<RefCell<State>>, slot: u32) {
    use crate::analysis::lens::{lens_positions, LENS_MAX_POSITIONS};
    let fail = |m: String| post(Response::Error { phase: "lens".into(), message: m });
    let (model, engine, ids) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        let Some(ids) = session.run_ids(slot) else { return fail("run a text first".into()) };
        (session.model.clone(), st.engine.clone(), ids)
    };
    let out = flows::lens(&engine, &model, &ids, &lens_positions(ids.len(), LENS_MAX_POSITIONS), &WorkerProgress { state, model: &model }).await;
    if !still_loaded(state, &model) {
        return post(Response::Superseded);
    }
    match out {
        Ok(lens) => {
            let mut named: Vec<u32> = lens.layers.iter().flat_map(|l| l.top_ids.iter().flatten().copied()).collect();
            named.sort_unstable();
            named.dedup();
            let vocab = named.into_iter().map(|id| (id, model.tokenizer.token_text(id))).collect();
            post(Response::Lens { lens: Box::new(lens), vocab })
        }
        Err(e) => fail(e.to_string()),
    }
}

/// The cost-of-attention sweep: attention alone at each n on the CPU and, with a GPU, both
/// kernels; progress after every measurement, stopped by `Cancel`.
async fn run_cost(state: &Rc<RefCell<State>>, max_n: usize) {
    CANCEL.with(|c| c.set(false));
    let Some((model, engine)) = state.borrow().parts() else { return post(no_model("cost")) };
    match flows::cost(&engine, &model, max_n, &WorkerProgress { state, model: &model }).await {
        Ok(swept) => post(Response::Cost { rows: swept.rows, cancelled: swept.cancelled, gpu: engine.gpu().map(|g| g.ctx.describe()) }),
        Err(message) => post(Response::Error { phase: "cost".into(), message }),
    }
}

/// Runs every trial, posting progress; stops early on `Cancel` (or a new model), keeping the
/// trials already done.
async fn run_experiment(state: &Rc<RefCell<State>>, experiment: crate::analysis::position::Experiment) {
    CANCEL.with(|c| c.set(false));
    let clock = Clock::start();
    let Some((model, engine)) = state.borrow().parts() else { return post(no_model("experiment")) };
    match flows::experiment(&engine, &model, &experiment, &WorkerProgress { state, model: &model }).await {
        Ok(swept) => post(Response::Experiment { experiment, rows: swept.rows, cancelled: swept.cancelled, elapsed_ms: clock.ms() }),
        Err(message) => post(Response::Error { phase: "experiment".into(), message }),
    }
}

/// What the browser says about its WebGPU adapter (vendor, architecture, description), and
/// its kind; `None` without WebGPU or an adapter.
async fn web_adapter() -> Option<(AdapterKind, String)> {
    let get = |o: &JsValue, k: &str| Reflect::get(o, &k.into()).ok().filter(|v| !v.is_undefined() && !v.is_null());
    let gpu = get(&js_sys::global(), "navigator").and_then(|n| get(&n, "gpu"))?;
    let request: js_sys::Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let opts = js_sys::Object::new();
    let _ = Reflect::set(&opts, &"powerPreference".into(), &"high-performance".into());
    let promise: js_sys::Promise = request.call1(&gpu, &opts).ok()?.dyn_into().ok()?;
    let adapter = JsFuture::from(promise).await.ok().filter(|a| !a.is_null() && !a.is_undefined())?;
    let info = get(&adapter, "info").unwrap_or(JsValue::UNDEFINED);
    let text = |k: &str| get(&info, k).and_then(|v| v.as_string()).unwrap_or_default();
    let words = [text("vendor"), text("architecture"), text("description"), text("device")];
    let fallback = [get(&info, "isFallbackAdapter"), get(&adapter, "isFallbackAdapter")].iter().flatten().any(|v| v.as_bool() == Some(true));
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let said = words.iter().filter(|w| !w.is_empty()).cloned().collect::<Vec<_>>().join(" ");
    Some((classify(&refs, fallback), said))
}

/// Picks the engine once, at the first model: the CPU when asked, or when the adapter is a
/// software renderer (unless WebGPU is asked for); WebGPU otherwise.
async fn choose_engine(state: &Rc<RefCell<State>>, choice: BackendChoice) {
    let note = match choice {
        BackendChoice::Cpu => Some("the CPU was chosen (backend=cpu)".to_string()),
        BackendChoice::Auto => match web_adapter().await {
            Some((AdapterKind::Software(name), _)) => Some(software_note(&name)),
            _ => None,
        },
        BackendChoice::Webgpu => None,
    };
    if note.is_some() {
        state.borrow_mut().note = note;
        return;
    }
    match GpuContext::new().await {
        Ok(ctx) => match ctx.adapter_kind() {
            AdapterKind::Software(name) if choice == BackendChoice::Auto => state.borrow_mut().note = Some(software_note(&name)),
            _ => state.borrow_mut().engine = Rc::new(Engine::with_gpu(GpuBackend::with_context(ctx))),
        },
        Err(crate::backends::gpu::context::GpuError::NoAdapter(_)) => state.borrow_mut().note = Some("no WebGPU adapter in this browser; running on the CPU".into()),
        Err(e) => state.borrow_mut().note = Some(format!("WebGPU unavailable ({e}); running on the CPU")),
    }
}

/// Parses the model; the previous model stays loaded if this one fails.
async fn load(state: &Rc<RefCell<State>>, bytes: Vec<u8>, choice: BackendChoice) {
    post(Response::Progress { phase: "parse".into(), done: 0.0, total: None });
    let model = match Model::from_gguf_vec(bytes) {
        Ok(m) => m,
        Err(e) => return post(Response::Error { phase: "load".into(), message: e.to_string() }),
    };
    let first = !std::mem::replace(&mut state.borrow_mut().gpu_tried, true);
    if first {
        choose_engine(state, choice).await;
    }
    let engine = state.borrow().engine.clone();
    if let Some(gpu) = engine.gpu() {
        post(Response::Progress { phase: "upload".into(), done: 0.0, total: None });
        gpu.prepare(&model);
    }
    let session = Session::new(model);
    let model = session.model.clone();
    state.borrow_mut().session = Some(session);
    // A hardware adapter earns its place: a short text must give the CPU's numbers.
    if choice == BackendChoice::Auto && engine.gpu().is_some() {
        post(Response::Progress { phase: "self-check".into(), done: 0.0, total: None });
        let ids = model.tokenizer.encode(SELF_CHECK_TEXT);
        if engine.self_check(&model, &ids).await.is_err() {
            state.borrow_mut().note = engine.take_note();
        }
    }
    let loaded = state.borrow().loaded(&model);
    post(loaded);
}

async fn run(state: &Rc<RefCell<State>>, slot: u32, text: &str, (layer, head, max_side): (usize, usize, usize), view: MapView) -> bool {
    let clock = Clock::start();
    let Some(toks) = state.borrow().session.as_ref().map(|s| s.tokenize(text)) else {
        post(no_model("run"));
        return false;
    };
    run_tokens(state, slot, text, &toks, (layer, head, max_side), view, clock.ms()).await
}

/// Runs `toks` (of `text`) and posts the result; false when no result was posted (refused,
/// superseded, failed).
async fn run_tokens(state: &Rc<RefCell<State>>, slot: u32, text: &str, toks: &[Token], (layer, head, max_side): (usize, usize, usize), view: MapView, tokenize_ms: f64) -> bool {
    let clock = Clock::start();
    let prepared = {
        let mut st = state.borrow_mut();
        let st = &mut *st;
        let Some(session) = st.session.as_mut() else {
            post(no_model("run"));
            return false;
        };
        session.prepare_run(slot, toks, true).map(|opts| (session.model.clone(), st.engine.clone(), opts))
    };
    let (model, engine, opts) = match prepared {
        Ok(p) => p,
        Err(refusal) => {
            post(refusal);
            return false;
        }
    };
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    let out = engine.forward_async(&model, &ids, &opts).await;
    report_fallback(state, &model);
    // A newer run of this slot arrived, or another model: this result would never be shown.
    if !latest(slot) || !still_loaded(state, &model) {
        post(Response::Superseded);
        return false;
    }
    match out {
        Ok(out) => {
            let forward_ms = clock.ms();
            let backend = if out.backend == "gpu" { "webgpu" } else { "cpu" };
            let mut r = match state.borrow_mut().session.as_mut() {
                Some(s) => s.finish_run(slot, text, toks, out, backend, layer, head, max_side, tokenize_ms, forward_ms),
                None => no_model("run"),
            };
            let ok = matches!(r, Response::Result { .. });
            if let Response::Result { run } = &mut r {
                run.memory_bytes = Some(wasm_memory_bytes() as u64);
                // The map as the page shows it (the report's rows stay the model's own).
                if !view.is_plain() {
                    if let Some(Response::Head { map, .. }) = state.borrow().session.as_ref().map(|s| s.head_view(slot, layer, head, max_side, None, None, view)) {
                        run.map = map;
                    }
                }
            }
            post(r);
            ok
        }
        Err(e) => {
            post(Response::from(e));
            false
        }
    }
}

/// Whether the request being handled is still the newest run of `slot`.
fn latest(slot: u32) -> bool {
    LATEST_RUN.with(|l| l.borrow().get(&slot).copied()) == Some(CURRENT_ID.with(|c| c.get()))
}

/// The model writes (see [`Request::Generate`]): the prompt's run, a `Token` per step, the
/// summary, then the run of everything. Stops at `Cancel` or a newer run of the slot (within
/// one token); a GPU failing mid-way hands the text to the CPU at the same position.
async fn generate(state: &Rc<RefCell<State>>, slot: u32, text: String, ids: Option<Vec<u32>>, chat: bool, o: GenOptions, (layer, head, max_side): (usize, usize, usize)) {
    CANCEL.with(|c| c.set(false));
    let prompt = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return post(no_model("generate")) };
        let text = match (chat, &ids) {
            (true, None) => crate::model::chat::chat_prompt(&session.model, &text).map_err(|e| e.to_string()),
            _ => Ok(text),
        };
        text.map(|text| match &ids {
            Some(ids) => session.extend_text("", &[], ids),
            None => {
                let mut toks = session.tokenize(&text);
                // A chat template that writes BOS itself, read by a tokenizer that adds one.
                let bos = session.model.tokenizer.bos_id;
                if chat && toks.len() >= 2 && bos.is_some_and(|b| toks[0].id == b && toks[1].id == b) {
                    toks.remove(0);
                }
                (text, toks)
            }
        })
    };
    let (text, toks) = match prompt {
        Ok(p) => p,
        Err(e) => return post(Response::Error { phase: "generate".into(), message: e }),
    };
    if !o.recompute && !run_tokens(state, slot, &text, &toks, (layer, head, max_side), MapView::default(), 0.0).await {
        return;
    }
    let Some((model, engine)) = state.borrow().parts() else { return post(no_model("generate")) };
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    let gpu = engine.gpu();
    let capacity = crate::generate::capacity(&model, ids.len(), &o);
    let decoder = match gpu.as_deref() {
        Some(g) => Decoder::gpu(g, &model, capacity),
        None => Decoder::cpu(&model, capacity),
    };
    let mut g = match Generator::new(decoder, &model, &ids, &o) {
        Ok(g) => g,
        Err(e) => return post(Response::Error { phase: "generate".into(), message: e }),
    };
    let (mut t, mut superseded, mut told) = (0, false, false);
    loop {
        let step = match g.next().await {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) => return post(Response::Error { phase: "generate".into(), message: e }),
        };
        if let (Some(note), false) = (g.note(), told) {
            told = true;
            engine.leave_gpu(note);
            report_fallback(state, &model);
        }
        let timings = g.timings();
        let ms = timings.decode.last().copied().filter(|_| t > 0).unwrap_or(timings.prefill);
        let map = if o.recompute { None } else { super::session::head_map(g.trace(), layer, head, max_side, None, None).ok() };
        post(Response::Token { t, n_prompt: ids.len(), token: gen_token(&model, &step), ms, kv_cache_bytes: g.kv_cache_bytes(), map });
        t += 1;
        yield_now().await;
        if !still_loaded(state, &model) {
            return post(Response::Superseded);
        }
        superseded = !o.recompute && !latest(slot);
        if superseded || CANCEL.with(|c| c.get()) {
            g.stop();
        }
    }
    if superseded {
        return post(Response::Superseded);
    }
    let recompute = o.recompute;
    let done = g.finish();
    let steps = done.steps.iter().map(|s| gen_token(&model, s)).collect();
    let generated = done.generated.clone();
    post(Response::Generated { generation: Box::new(GenSummary { ids: done.ids, generated: done.generated, text_out: done.text_out, steps, timings_ms: done.timings_ms, kv_cache_bytes: done.kv_cache_bytes, finish: done.finish, backend: if done.backend == "gpu" { "webgpu".into() } else { "cpu".into() }, recompute, note: done.note }) });
    if !recompute {
        let full = state.borrow().session.as_ref().map(|s| s.extend_text(&text, &toks, &generated));
        if let Some((full, toks)) = full {
            run_tokens(state, slot, &full, &toks, (layer, head, max_side), MapView::default(), 0.0).await;
        }
    }
}

/// A step as the page shows it: the token, its probability, the five likeliest tokens.
fn gen_token(model: &Model, s: &crate::generate::GenStep) -> GenToken {
    let tok = &model.tokenizer;
    let top = s.top.iter().take(5).map(|&(id, l)| (id, tok.token_text(id), (l - s.lse).exp())).collect();
    GenToken { id: s.token, text: tok.token_text(s.token), prob: s.prob, top }
}

/// Fetches `url` through the Cache API, posting progress. Workers of several documents of
/// one origin (a course page and its iframes) take turns under a Web Lock named after the
/// URL, so the model crosses the network once and the others read it from the cache.
async fn fetch_cached(url: &str) -> Result<Vec<u8>, String> {
    let locks = Reflect::get(&js_sys::global(), &"navigator".into()).and_then(|n| Reflect::get(&n, &"locks".into())).ok().filter(|l| !l.is_undefined());
    let request = locks.as_ref().and_then(|l| Reflect::get(l, &"request".into()).ok()).and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    let (Some(locks), Some(request)) = (locks, request) else { return fetch_cached_unlocked(url).await };
    let owned = url.to_string();
    // The bytes stay in wasm memory; only the lock's promise crosses to JavaScript.
    let out: Rc<RefCell<Option<Result<Vec<u8>, String>>>> = Rc::default();
    let slot = out.clone();
    let body = Closure::once(move |_lock: JsValue| -> js_sys::Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            *slot.borrow_mut() = Some(fetch_cached_unlocked(&owned).await);
            Ok(JsValue::UNDEFINED)
        })
    });
    let promise: js_sys::Promise = request.call2(&locks, &JsValue::from_str(&format!("attnlab-model {url}")), body.as_ref()).map_err(js_err)?.unchecked_into();
    JsFuture::from(promise).await.map_err(js_err)?;
    drop(body);
    let result = out.borrow_mut().take();
    result.unwrap_or_else(|| Err("the download ended without a result".into()))
}

async fn fetch_cached_unlocked(url: &str) -> Result<Vec<u8>, String> {
    let scope = scope();
    let cache: Option<web_sys::Cache> = match scope.caches() {
        Ok(caches) => JsFuture::from(caches.open(CACHE_NAME)).await.ok().map(|c| c.unchecked_into()),
        Err(_) => None,
    };
    let mut from_cache = false;
    let mut stored: Option<js_sys::Promise> = None;
    let mut response: Option<web_sys::Response> = None;
    if let Some(c) = &cache {
        if let Ok(hit) = JsFuture::from(c.match_with_str(url)).await {
            if !hit.is_undefined() {
                response = Some(hit.unchecked_into());
                from_cache = true;
            }
        }
    }
    let resp = match response {
        Some(r) => r,
        None => {
            let r: web_sys::Response = JsFuture::from(scope.fetch_with_str(url)).await.map_err(|e| format!("network error: {}", js_err(e)))?.unchecked_into();
            if !r.ok() {
                return Err(format!("{url}: HTTP {}", r.status()));
            }
            if let (Some(c), Ok(copy)) = (&cache, r.clone()) {
                // Stored while we read (awaited below); a full cache only costs the next visit a download.
                stored = Some(c.put_with_str(url, &copy));
            }
            r
        }
    };
    let phase = if from_cache { "cache" } else { "download" };
    let total = resp.headers().get("content-length").ok().flatten().and_then(|s| s.parse::<f64>().ok());
    let body = resp.body().ok_or("empty response")?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(total.unwrap_or(0.0) as usize);
    let mut last_post = 0.0;
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| format!("download interrupted: {}", js_err(e)))?;
        if Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into()).map_err(js_err)?.unchecked_into();
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        if bytes.len() as f64 - last_post > 1e6 {
            last_post = bytes.len() as f64;
            post(Response::Progress { phase: phase.into(), done: bytes.len() as f64, total });
        }
    }
    post(Response::Progress { phase: phase.into(), done: bytes.len() as f64, total });
    if let Some(p) = stored {
        // Other documents waiting on the lock read the model from the cache once this is done.
        let _ = JsFuture::from(p).await;
    }
    Ok(bytes)
}
