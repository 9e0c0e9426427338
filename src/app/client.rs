//! The page's side of the engine worker: spawn it, send requests with ids, route responses.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker};

use crate::worker::protocol::{Request, Response};
use crate::worker::wire;

/// Trunk builds the worker (wasm-bindgen `no-modules` output) beside the page, in two builds:
/// plain SIMD128, and relaxed SIMD (FMA) from `scripts/relaxed-worker.sh`.
pub const WORKER_JS: &str = "attnlab-worker.js";
pub const WORKER_WASM: &str = "attnlab-worker_bg.wasm";
pub const WORKER_RELAXED_JS: &str = "attnlab-worker-relaxed.js";
pub const WORKER_RELAXED_WASM: &str = "attnlab-worker-relaxed_bg.wasm";

/// Whether the page's address says `simd=plain` (keeps the SIMD128 build; tests compare both).
fn plain_simd_asked() -> bool {
    web_sys::window().and_then(|w| w.location().search().ok()).and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok()).and_then(|p| p.get("simd")).as_deref() == Some("plain")
}

/// A message waiting for the worker to start: (message object, transferable bytes).
type Pending = (JsValue, Option<js_sys::ArrayBuffer>);

#[derive(Clone)]
pub struct Client {
    worker: Worker,
    /// Messages sent before the worker said `Ready`, in order.
    pending: Rc<RefCell<Option<Vec<Pending>>>>,
    next_id: Rc<Cell<u64>>,
}

/// Starts the worker from `base` (an absolute URL ending in `/`). A worker script must come
/// from the page's own origin, so the worker is a small same-origin `blob:` script that
/// imports the engine from `base` (which may be another origin: it then needs CORS).
/// The relaxed build is tried where the browser validates a module holding one
/// `f32x4.relaxed_madd`; a missing relaxed script (a build without the hook) falls back to the
/// plain one. (Only before the first script runs: each defines the global `wasm_bindgen`.)
fn start_worker(base: &str) -> Result<Worker, String> {
    let boot = format!(
        "const fail = (e) => postMessage({{ value: {{ type: 'error', phase: 'worker', message: String(e) }}, floats: [], id: 0 }});\n\
         const v = [253, 12, ...new Array(16).fill(0)];\n\
         const relaxed = {try_relaxed} && WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0, ...v, ...v, ...v, 253, 133, 2, 11]));\n\
         let wasm = {wasm:?};\n\
         try {{\n  if (!relaxed) throw 0;\n  importScripts({rjs:?});\n  wasm = {rwasm:?};\n}} catch (_) {{\n  importScripts({js:?});\n}}\n\
         wasm_bindgen({{ module_or_path: wasm }}).catch(fail);\n",
        try_relaxed = !plain_simd_asked(),
        js = format!("{base}{WORKER_JS}"),
        wasm = format!("{base}{WORKER_WASM}"),
        rjs = format!("{base}{WORKER_RELAXED_JS}"),
        rwasm = format!("{base}{WORKER_RELAXED_WASM}")
    );
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("text/javascript");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&Array::of1(&JsValue::from_str(&boot)), &opts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    let worker = Worker::new(&url).map_err(|e| format!("cannot start the engine worker (a Content-Security-Policy must allow worker-src blob:): {e:?}"));
    let _ = web_sys::Url::revoke_object_url(&url);
    worker
}

impl Client {
    /// Starts the worker; `on_response` gets every message it sends with the id of the
    /// request it answers (0 for messages that answer none).
    pub fn spawn(base: &str, on_response: impl Fn(u64, Response) + 'static) -> Result<Client, String> {
        let worker = start_worker(base)?;
        let pending: Rc<RefCell<Option<Vec<Pending>>>> = Rc::new(RefCell::new(Some(Vec::new())));
        let (w, p) = (worker.clone(), pending.clone());
        let handler = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let data = ev.data();
            match wire::decode::<Response>(&data) {
                Ok((Response::Ready, _)) => {
                    for (msg, bytes) in p.borrow_mut().take().unwrap_or_default() {
                        post(&w, &msg, bytes);
                    }
                }
                Ok((r, id)) => on_response(id as u64, r),
                Err(e) => {
                    let id = Reflect::get(&data, &"id".into()).ok().and_then(|i| i.as_f64()).unwrap_or(0.0) as u64;
                    on_response(id, Response::Error { phase: "protocol".into(), message: format!("from the worker: {e}") })
                }
            }
        });
        worker.set_onmessage(Some(handler.as_ref().unchecked_ref()));
        handler.forget();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            web_sys::console::error_1(&e);
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        Ok(Client { worker, pending, next_id: Rc::new(Cell::new(1)) })
    }

    /// Sends a request; returns its id.
    pub fn send(&self, req: &Request) -> u64 {
        self.send_with_bytes(req, None)
    }

    /// Sends a request, transferring `bytes` (no copy) when given; returns its id.
    pub fn send_with_bytes(&self, req: &Request, bytes: Option<js_sys::ArrayBuffer>) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let msg = match wire::encode(req.clone(), id as f64) {
            Ok((msg, _)) => msg,
            Err(e) => {
                web_sys::console::error_1(&JsValue::from_str(&e));
                return id;
            }
        };
        if let Some(queue) = self.pending.borrow_mut().as_mut() {
            queue.push((msg, bytes));
            return id;
        }
        post(&self.worker, &msg, bytes);
        id
    }
}

fn post(worker: &Worker, msg: &JsValue, bytes: Option<js_sys::ArrayBuffer>) {
    let result = match bytes {
        Some(b) => {
            let _ = Reflect::set(msg, &"bytes".into(), &b);
            worker.post_message_with_transfer(msg, &Array::of1(&b))
        }
        None => worker.post_message(msg),
    };
    if let Err(e) = result {
        web_sys::console::error_1(&e);
    }
}
