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
    routes: Rc<RefCell<HashMap<u64, Route>>>,
}

thread_local! {
    /// One engine per (model URL, backend choice).
    static ENGINES: RefCell<Vec<((String, BackendChoice), Rc<Engine>)>> = const { RefCell::new(Vec::new()) };
}

/// Whether `r` ends the exchange its request started.
fn is_final(r: &Response) -> bool {
    !matches!(r, Response::Progress { .. } | Response::Ready | Response::Loaded { .. })
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
        let routes: Rc<RefCell<HashMap<u64, Route>>> = Rc::default();
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
            let route = rt.borrow().get(&id).cloned();
            if let Some(route) = route {
                if is_final(&r) {
                    rt.borrow_mut().remove(&id);
                }
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
        let id = self.client.send(&req);
        self.routes.borrow_mut().insert(id, Rc::new(on));
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
