//! The worker's wasm glue: receives requests, fetches the model (with progress, through the
//! Cache API so a second visit needs no network), picks WebGPU or the CPU, and answers.
//! Requests are handled one at a time, in arrival order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::protocol::{BackendChoice, Request, Response};
use crate::backends::engine::SELF_CHECK_TEXT;
use crate::backends::gpu::adapter::{classify, software_note, AdapterKind};
use super::session::{summary, Session};
use crate::analysis::report::report_forward_options;
use crate::backends::gpu::context::GpuContext;
use crate::backends::engine::Engine;
use crate::backends::gpu::GpuBackend;
use crate::util::Clock;
use crate::Model;

const CACHE_NAME: &str = "attnlab-models-v1";

thread_local! {
    /// Set by a `Cancel` message; checked between experiment trials.
    static CANCEL: Cell<bool> = const { Cell::new(false) };
    /// The id of the request being handled: every answer carries it.
    static CURRENT_ID: Cell<f64> = const { Cell::new(0.0) };
}

/// Lets the worker's event loop deliver messages (a cancel) between trials.
async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
    });
    let _ = JsFuture::from(promise).await;
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    /// The GPU when the browser has one, with the one GPU→CPU fallback.
    engine: Engine,
    /// Why the CPU runs instead of WebGPU, when it does.
    note: Option<String>,
    gpu_tried: bool,
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// Posts `{json, id}`, `id` being the request's being handled.
fn post(r: &Response) {
    post_to(r, CURRENT_ID.with(|c| c.get()))
}

/// Posts `{json, id}` answering request `id`.
fn post_to(r: &Response, id: f64) {
    let json = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"type\":\"error\",\"phase\":\"protocol\",\"message\":\"{e}\"}}"));
    let msg = js_sys::Object::new();
    let _ = Reflect::set(&msg, &"json".into(), &JsValue::from_str(&json));
    let _ = Reflect::set(&msg, &"id".into(), &JsValue::from_f64(id));
    let _ = scope().post_message(&msg);
}

fn js_err(e: JsValue) -> String {
    e.as_string().or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message()))).unwrap_or_else(|| format!("{e:?}"))
}

/// Starts listening for requests.
pub fn start() {
    console_error_panic_hook::set_once();
    let queue: Rc<RefCell<VecDeque<(f64, String, Option<ArrayBuffer>)>>> = Rc::default();
    let busy = Rc::new(Cell::new(false));
    let state = Rc::new(RefCell::new(State::default()));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let data = ev.data();
        let json = Reflect::get(&data, &"json".into()).ok().and_then(|j| j.as_string()).unwrap_or_default();
        // A cancel must not wait behind the experiment it stops.
        if matches!(serde_json::from_str::<Request>(&json), Ok(Request::Cancel)) {
            CANCEL.with(|c| c.set(true));
            return;
        }
        let bytes = Reflect::get(&data, &"bytes".into()).ok().and_then(|b| b.dyn_into::<ArrayBuffer>().ok());
        let id = Reflect::get(&data, &"id".into()).ok().and_then(|i| i.as_f64()).unwrap_or(0.0);
        // A new run replaces the runs of its slot still waiting in the queue: rapid clicks
        // end with one run of the last text, and each replaced request gets its answer.
        if let Ok(Request::Run { slot, .. }) = serde_json::from_str::<Request>(&json) {
            let mut q = queue.borrow_mut();
            q.retain(|(old, j, _)| {
                let replaced = matches!(serde_json::from_str::<Request>(j), Ok(Request::Run { slot: s, .. }) if s == slot);
                if replaced {
                    post_to(&Response::Superseded, *old);
                }
                !replaced
            });
        }
        queue.borrow_mut().push_back((id, json, bytes));
        if busy.get() {
            return;
        }
        busy.set(true);
        let (queue, busy, state) = (queue.clone(), busy.clone(), state.clone());
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let next = queue.borrow_mut().pop_front();
                let Some((id, json, bytes)) = next else { break };
                CURRENT_ID.with(|c| c.set(id));
                match serde_json::from_str::<Request>(&json) {
                    Ok(req) => handle(&state, req, bytes).await,
                    Err(e) => post(&Response::Error { phase: "protocol".into(), message: format!("bad request: {e}") }),
                }
            }
            busy.set(false);
        });
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&Response::Ready);
}

async fn handle(state: &Rc<RefCell<State>>, req: Request, bytes: Option<ArrayBuffer>) {
    match req {
        Request::LoadUrl { url, backend } => match fetch_cached(&url).await {
            Ok(b) => load(state, b, backend).await,
            Err(e) => post(&Response::Error { phase: "download".into(), message: e }),
        },
        Request::LoadBytes { name, backend } => match bytes {
            Some(b) => load(state, Uint8Array::new(&b).to_vec(), backend).await,
            None => post(&Response::Error { phase: "open".into(), message: format!("{name}: no bytes arrived") }),
        },
        Request::Run { text, layer, head, max_side, slot } => run(state, slot, &text, layer, head, max_side).await,
        Request::Explain { layer, head, query, slot } => match &state.borrow().session {
            Some(s) => post(&s.explain(slot, layer, head, query)),
            None => post(&Response::Error { phase: "explain".into(), message: "no model is loaded".into() }),
        },
        Request::Head { layer, head, max_side, rows, cols, slot, view } => match &state.borrow().session {
            Some(s) => post(&s.head_view(slot, layer, head, max_side, rows, cols, view)),
            None => post(&Response::Error { phase: "map".into(), message: "no model is loaded".into() }),
        },
        Request::Thumbs { side, slot } => match &state.borrow().session {
            Some(s) => post(&s.thumbs(slot, side)),
            None => post(&Response::Error { phase: "thumbnails".into(), message: "no model is loaded".into() }),
        },
        Request::Heads { slot } => match &state.borrow().session {
            Some(s) => post(&s.heads(slot)),
            None => post(&Response::Error { phase: "heads".into(), message: "no model is loaded".into() }),
        },
        Request::Similarity { slot } => match &state.borrow().session {
            Some(s) => post(&s.similarity(slot)),
            None => post(&Response::Error { phase: "similarity".into(), message: "no model is loaded".into() }),
        },
        Request::Ablate { heads, slot } => run_ablation(state, slot, heads).await,
        Request::Induction { period, seed } => run_induction(state, period, seed).await,
        Request::Experiment { experiment } => run_experiment(state, experiment).await,
        Request::Cost { max_n } => run_cost(state, max_n).await,
        Request::Cancel => {}
    }
}

/// The induction diagnostic on the worker's engine (GPU or CPU).
async fn run_induction(state: &Rc<RefCell<State>>, period: usize, seed: u64) {
    use crate::analysis::heads::{induction_grid, random_ids, Induction};
    let st = state.borrow();
    let Some(session) = st.session.as_ref() else {
        return post(&Response::Error { phase: "induction".into(), message: "no model is loaded".into() });
    };
    let p = period.clamp(2, session.model.config.context_length / 2);
    let first = random_ids(p, seed);
    let vocab = session.model.config.vocab_size as u32;
    let first: Vec<u32> = first.into_iter().map(|id| id % vocab).collect();
    let ids: Vec<u32> = first.iter().chain(&first).copied().collect();
    let opts = crate::backends::ForwardOptions { logits_for: crate::backends::LogitsFor::Last, ..Default::default() };
    match st.engine.forward_async(&session.model, &ids, &opts).await {
        Ok(out) => {
            let t = out.trace.as_ref().expect("capture was requested");
            let tokens = first.iter().map(|&id| session.model.tokenizer.token_text(id)).collect();
            let grid = induction_grid(t, p);
            let maps = Session::induction_maps(t, &grid, 4);
            post(&Response::Induction { induction: Box::new(Induction { period: p, ids, induction: grid }), tokens, maps });
        }
        Err(e) => post(&Response::Error { phase: "induction".into(), message: e.to_string() }),
    }
}

/// The last run of `slot` with `heads` knocked out, against the plain pass, on the engine.
async fn run_ablation(state: &Rc<RefCell<State>>, slot: u32, heads: Vec<(usize, usize)>) {
    use crate::analysis::heads::ablation_options;
    use super::session::ABLATION_POSITIONS;
    let fail = |m: String| post(&Response::Error { phase: "knock-out".into(), message: m });
    let outs = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else { return fail("no model is loaded".into()) };
        let c = &session.model.config;
        if let Some((l, h)) = heads.iter().find(|(l, h)| *l >= c.n_layer || *h >= c.n_head) {
            return fail(format!("layer {l} head {h} is not in this model ({} layers × {} heads)", c.n_layer, c.n_head));
        }
        let Some(ids) = session.run_ids(slot) else { return fail("run a text first".into()) };
        let n = ids.len();
        post(&Response::Progress { phase: "knock-out".into(), done: 0.0, total: Some(2.0) });
        let before = st.engine.forward_async(&session.model, &ids, &ablation_options(n, &[], false, Some(ABLATION_POSITIONS))).await;
        post(&Response::Progress { phase: "knock-out".into(), done: 1.0, total: Some(2.0) });
        let after = st.engine.forward_async(&session.model, &ids, &ablation_options(n, &heads, true, Some(ABLATION_POSITIONS))).await;
        if let Some(note) = st.engine.take_note() {
            post(&Response::Loaded { model: summary(&session.model), backend: "cpu".into(), adapter: "CPU (WebAssembly, one thread)".into(), note: Some(note) });
        }
        before.and_then(|b| after.map(|a| (b, a)))
    };
    match outs {
        Ok((before, after)) => {
            let mut st = state.borrow_mut();
            match st.session.as_mut() {
                Some(s) => post(&s.finish_ablation(slot, &heads, &before, after)),
                None => fail("no model is loaded".into()),
            }
        }
        Err(e) => fail(e.to_string()),
    }
}

/// The cost-of-attention sweep: attention alone at each n on the CPU and, with a GPU, both
/// kernels; progress after every measurement, stopped by `Cancel`.
async fn run_cost(state: &Rc<RefCell<State>>, max_n: usize) {
    use crate::analysis::cost::{cpu_row, gpu_row, shape, sweep_sizes};
    CANCEL.with(|c| c.set(false));
    let (config, gpu) = {
        let st = state.borrow();
        let Some(session) = st.session.as_ref() else {
            return post(&Response::Error { phase: "cost".into(), message: "no model is loaded".into() });
        };
        (session.model.config.clone(), st.engine.gpu())
    };
    let sizes = sweep_sizes(max_n.min(config.context_length.max(128)).min(16_384));
    let per_n = if gpu.is_some() { 3 } else { 1 };
    let total = (sizes.len() * per_n) as f64;
    let mut rows = vec![];
    let mut cancelled = false;
    post(&Response::Progress { phase: "cost".into(), done: 0.0, total: Some(total) });
    'sizes: for n in sizes {
        let s = shape(&config, n);
        yield_now().await;
        if CANCEL.with(|c| c.get()) {
            cancelled = true;
            break;
        }
        rows.push(cpu_row(s, if n <= 1024 { 3 } else { 1 }));
        post(&Response::Progress { phase: "cost".into(), done: rows.len() as f64, total: Some(total) });
        if let Some(g) = &gpu {
            for flash in [true, false] {
                yield_now().await;
                if CANCEL.with(|c| c.get()) {
                    cancelled = true;
                    break 'sizes;
                }
                match gpu_row(&g.ctx, s, flash, 2).await {
                    Ok(r) => rows.push(r),
                    Err(e) => return post(&Response::Error { phase: "cost".into(), message: format!("the GPU failed at n = {n}: {e}") }),
                }
                post(&Response::Progress { phase: "cost".into(), done: rows.len() as f64, total: Some(total) });
            }
        }
    }
    post(&Response::Cost { rows, cancelled, gpu: gpu.map(|g| g.ctx.describe()) });
}

/// Runs every trial, posting progress; stops early on `Cancel`.
async fn run_experiment(state: &Rc<RefCell<State>>, experiment: crate::analysis::position::Experiment) {
    use crate::analysis::position::{summarise, Prepared, ResultRow};
    CANCEL.with(|c| c.set(false));
    let clock = Clock::start();
    let groups = match experiment.groups() {
        Ok(g) => g,
        Err(e) => return post(&Response::Error { phase: "experiment".into(), message: e.to_string() }),
    };
    let total: usize = groups.iter().map(|g| g.3.len()).sum();
    let mut done = 0;
    let mut rows = vec![];
    let mut cancelled = false;
    post(&Response::Progress { phase: "experiment".into(), done: 0.0, total: Some(total as f64) });
    'groups: for (size, index, relative, trials) in groups {
        let mut scores = vec![];
        for trial in trials {
            yield_now().await;
            if CANCEL.with(|c| c.get()) {
                cancelled = true;
                if !scores.is_empty() {
                    rows.push(ResultRow { size, summary: summarise(index, relative, &scores) });
                }
                break 'groups;
            }
            let st = state.borrow();
            let Some(session) = st.session.as_ref() else {
                return post(&Response::Error { phase: "experiment".into(), message: "no model is loaded".into() });
            };
            let prep = match Prepared::new(&session.model, &trial) {
                Ok(p) => p,
                Err(e) => return post(&Response::Error { phase: "experiment".into(), message: e.to_string() }),
            };
            let out = st.engine.forward_async(&session.model, &prep.ids, &prep.options()).await;
            if let Some(note) = st.engine.take_note() {
                post(&Response::Loaded { model: summary(&session.model), backend: "cpu".into(), adapter: "CPU (WebAssembly, one thread)".into(), note: Some(note) });
            }
            match out {
                Ok(out) => scores.push(prep.score(&out)),
                Err(e) => return post(&Response::Error { phase: "experiment".into(), message: e.to_string() }),
            }
            done += 1;
            post(&Response::Progress { phase: "experiment".into(), done: done as f64, total: Some(total as f64) });
        }
        rows.push(ResultRow { size, summary: summarise(index, relative, &scores) });
    }
    post(&Response::Experiment { experiment, rows, cancelled, elapsed_ms: clock.ms() });
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
            _ => state.borrow_mut().engine = Engine::with_gpu(GpuBackend::with_context(ctx)),
        },
        Err(crate::backends::gpu::context::GpuError::NoAdapter(_)) => state.borrow_mut().note = Some("no WebGPU adapter in this browser; running on the CPU".into()),
        Err(e) => state.borrow_mut().note = Some(format!("WebGPU unavailable ({e}); running on the CPU")),
    }
}

/// Parses the model; the previous model stays loaded if this one fails.
async fn load(state: &Rc<RefCell<State>>, bytes: Vec<u8>, choice: BackendChoice) {
    post(&Response::Progress { phase: "parse".into(), done: 0.0, total: None });
    let model = match Model::from_gguf_vec(bytes) {
        Ok(m) => m,
        Err(e) => return post(&Response::Error { phase: "load".into(), message: e.to_string() }),
    };
    if !state.borrow().gpu_tried {
        state.borrow_mut().gpu_tried = true;
        choose_engine(state, choice).await;
    }
    let model_summary = summary(&model);
    {
        let mut st = state.borrow_mut();
        if let Some(gpu) = st.engine.gpu() {
            post(&Response::Progress { phase: "upload".into(), done: 0.0, total: None });
            gpu.prepare(&model);
        }
        st.session = Some(Session::new(model));
    }
    // A hardware adapter earns its place: a short text must give the CPU's numbers.
    if choice == BackendChoice::Auto {
        let st = state.borrow();
        if let (Some(session), Some(_)) = (st.session.as_ref(), st.engine.gpu()) {
            post(&Response::Progress { phase: "self-check".into(), done: 0.0, total: None });
            let ids = session.model.tokenizer.encode(SELF_CHECK_TEXT);
            if st.engine.self_check(&session.model, &ids).await.is_err() {
                drop(st);
                let mut st = state.borrow_mut();
                st.note = st.engine.take_note();
            }
        }
    }
    let st = state.borrow();
    let (backend, adapter) = match st.engine.gpu() {
        Some(g) => ("webgpu".to_string(), g.ctx.describe()),
        None => ("cpu".to_string(), "CPU (WebAssembly, one thread)".to_string()),
    };
    post(&Response::Loaded { model: model_summary, backend, adapter, note: st.note.clone() });
}

async fn run(state: &Rc<RefCell<State>>, slot: u32, text: &str, layer: usize, head: usize, max_side: usize) {
    let mut st = state.borrow_mut();
    let st = &mut *st;
    let Some(session) = st.session.as_mut() else {
        return post(&Response::Error { phase: "run".into(), message: "no model is loaded".into() });
    };
    let clock = Clock::start();
    let toks = session.tokenize(text);
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    let tokenize_ms = clock.ms();
    let out = st.engine.forward_async(&session.model, &ids, &report_forward_options()).await;
    // The GPU failed (device lost, out of memory) and the engine finished on the CPU: say so.
    if let Some(note) = st.engine.take_note() {
        st.note = Some(note);
        post(&Response::Loaded { model: summary(&session.model), backend: "cpu".into(), adapter: "CPU (WebAssembly, one thread)".into(), note: st.note.clone() });
    }
    match out {
        Ok(out) => {
            let forward_ms = clock.ms() - tokenize_ms;
            let backend = if out.backend == "gpu" { "webgpu" } else { "cpu" };
            post(&session.finish_run(slot, text, &toks, out, backend, layer, head, max_side, tokenize_ms, forward_ms));
        }
        Err(e) => post(&Response::from(e)),
    }
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
            post(&Response::Progress { phase: phase.into(), done: bytes.len() as f64, total });
        }
    }
    post(&Response::Progress { phase: phase.into(), done: bytes.len() as f64, total });
    if let Some(p) = stored {
        // Other documents waiting on the lock read the model from the cache once this is done.
        let _ = JsFuture::from(p).await;
    }
    Ok(bytes)
}
