//! The page's side of the engine worker: spawn it, send requests, route responses.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker};

use crate::worker::protocol::{Request, Response};

/// Trunk builds the worker with a loader shim beside the page.
pub const WORKER_URL: &str = "attnlab-worker_loader.js";

/// A message waiting for the worker to start: (message object, transferable bytes).
type Pending = (JsValue, Option<js_sys::ArrayBuffer>);

#[derive(Clone)]
pub struct Client {
    worker: Worker,
    /// Messages sent before the worker said `Ready`, in order.
    pending: Rc<RefCell<Option<Vec<Pending>>>>,
}

impl Client {
    /// Starts the worker; `on_response` gets every message it sends.
    pub fn spawn(base: &str, on_response: impl Fn(Response) + 'static) -> Result<Client, String> {
        let worker = Worker::new(&format!("{base}{WORKER_URL}")).map_err(|e| format!("cannot start the engine worker: {e:?}"))?;
        let pending: Rc<RefCell<Option<Vec<Pending>>>> = Rc::new(RefCell::new(Some(Vec::new())));
        let (w, p) = (worker.clone(), pending.clone());
        let handler = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let text = ev.data().as_string().unwrap_or_default();
            match serde_json::from_str::<Response>(&text) {
                Ok(Response::Ready) => {
                    for (msg, bytes) in p.borrow_mut().take().unwrap_or_default() {
                        post(&w, &msg, bytes);
                    }
                }
                Ok(r) => on_response(r),
                Err(e) => on_response(Response::Error { phase: "protocol".into(), message: format!("bad message from the worker: {e}") }),
            }
        });
        worker.set_onmessage(Some(handler.as_ref().unchecked_ref()));
        handler.forget();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            web_sys::console::error_1(&e);
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();
        Ok(Client { worker, pending })
    }

    pub fn send(&self, req: &Request) {
        self.send_with_bytes(req, None);
    }

    /// Sends a request, transferring `bytes` (no copy) when given.
    pub fn send_with_bytes(&self, req: &Request, bytes: Option<js_sys::ArrayBuffer>) {
        let msg = Object::new();
        let json = serde_json::to_string(req).unwrap_or_default();
        let _ = Reflect::set(&msg, &"json".into(), &JsValue::from_str(&json));
        let msg: JsValue = msg.into();
        if let Some(queue) = self.pending.borrow_mut().as_mut() {
            queue.push((msg, bytes));
            return;
        }
        post(&self.worker, &msg, bytes);
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
