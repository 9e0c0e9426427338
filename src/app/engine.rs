//! One engine per model per page: however many widgets a page holds, each model is
//! downloaded once (then kept by the Cache API) into one worker that serves them all in
//! turn. A widget asks with [`Engine::request`] and gets only the answers to its own
//! requests; everyone sees the model's loading state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use leptos::prelude::*;

use super::client::Client;
use crate::worker::protocol::{BackendChoice, ModelSummary, Request, Response};

type Route = Rc<dyn Fn(Response)>;

/// A request's route and how its answers end: one final answer, or (a generation) a
/// stream — the prompt's result, tokens, the summary, then the whole text's result.
struct Routed {
    on: Route,
    stream: Stream,
}

#[derive(Clone, Copy, PartialEq)]
enum Stream {
    One,
    /// Ends after `Generated` (without the cache: no result follows) or the result after it.
    Writing { replay: bool, generated: bool },
}

/// The model's state as every widget sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelState {
    Loading { phase: String, done: f64, total: Option<f64> },
    Ready { model: ModelSummary, backend: String, adapter: String, note: Option<String> },
    Failed(String),
}

pub struct Engine {
    client: Client,
    pub state: ArcRwSignal<ModelState>,
    routes: Rc<RefCell<HashMap<u64, Routed>>>,
}

thread_local! {
    /// One engine per (model URL, backend choice).
    static ENGINES: RefCell<Vec<((String, BackendChoice), Rc<Engine>)>> = const { RefCell::new(Vec::new()) };
}

/// Whether `r` ends the exchange its request started.
fn is_final(r: &Response, stream: &mut Stream) -> bool {
    if matches!(r, Response::Progress { .. } | Response::Ready | Response::Loaded { .. }) {
        return false;
    }
    match (stream, r) {
        // Writing under several variants: one answer after each.
        (Stream::One, Response::Written { written, total, cancelled }) => *cancelled || written.len() >= *total,
        (Stream::One, _) | (_, Response::Error { .. } | Response::Superseded | Response::TooLong { .. }) => true,
        (Stream::Writing { replay, generated }, Response::Generated { .. }) => {
            *generated = true;
            *replay
        }
        (Stream::Writing { generated, .. }, Response::Result { .. }) => *generated,
        _ => false,
    }
}

impl Engine {
    /// The page's engine for `model_url` (absolute), started and told to load the model on
    /// first use. `base` is where the worker's files live (absolute, ending in `/`); `backend`
    /// the widget's `backend` attribute.
    pub fn get(model_url: &str, base: &str, backend: BackendChoice) -> Result<Rc<Engine>, String> {
        let key = (model_url.to_string(), backend);
        if let Some(e) = ENGINES.with(|m| m.borrow().iter().find(|(k, _)| *k == key).map(|(_, e)| e.clone())) {
            return Ok(e);
        }
        let state = ArcRwSignal::new(ModelState::Loading { phase: "download".into(), done: 0.0, total: None });
        let routes: Rc<RefCell<HashMap<u64, Routed>>> = Rc::default();
        let load_id = Rc::new(std::cell::Cell::new(0u64));
        let (st, rt, lid) = (state.clone(), routes.clone(), load_id.clone());
        let client = Client::spawn(base, move |id, r| {
            match &r {
                // A GPU failure mid-run also says which backend now serves.
                Response::Loaded { model, backend, adapter, note } => {
                    st.set(ModelState::Ready { model: model.clone(), backend: backend.clone(), adapter: adapter.clone(), note: note.clone() });
                }
                Response::Progress { phase, done, total } if id == lid.get() => st.set(ModelState::Loading { phase: phase.clone(), done: *done, total: *total }),
                Response::Error { phase, message } if id == lid.get() || id == 0 => st.set(ModelState::Failed(format!("{phase}: {message}"))),
                _ => {}
            }
            let route = {
                let mut routes = rt.borrow_mut();
                let found = routes.get_mut(&id).map(|e| (e.on.clone(), is_final(&r, &mut e.stream)));
                if let Some((_, true)) = found {
                    routes.remove(&id);
                }
                found.map(|f| f.0)
            };
            if let Some(route) = route {
                route(r);
            }
        })?;
        load_id.set(client.send(&Request::LoadUrl { url: model_url.to_string(), backend }));
        let engine = Rc::new(Engine { client, state, routes });
        ENGINES.with(|m| m.borrow_mut().push((key, engine.clone())));
        Ok(engine)
    }

    /// Sends `req`; `on` gets every answer to it (progress, then one final answer).
    pub fn request(&self, req: Request, on: impl Fn(Response) + 'static) -> u64 {
        // The id is known only once sent; the worker answers after this returns (messages
        // arrive on a later turn of the event loop), so registering afterwards is safe.
        let stream = match req {
            Request::Generate { recompute, .. } => Stream::Writing { replay: recompute, generated: false },
            _ => Stream::One,
        };
        let id = self.client.send(&req);
        self.routes.borrow_mut().insert(id, Routed { on: Rc::new(on), stream });
        id
    }

    /// Stops a running experiment after its current trial.
    pub fn cancel(&self) {
        self.client.send(&Request::Cancel);
    }
}

/// The absolute URL of the page's directory (what relative URLs resolve against).
pub fn page_base() -> String {
    let doc_base = web_sys::window().and_then(|w| w.document()).and_then(|d| d.base_uri().ok().flatten()).unwrap_or_default();
    resolve(".", &doc_base)
}

/// `url` resolved against `base` (left as it is when it cannot be).
pub fn resolve(url: &str, base: &str) -> String {
    web_sys::Url::new_with_base(url, base).map(|u| u.href()).unwrap_or_else(|_| url.to_string())
}
