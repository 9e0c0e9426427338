//! The playground's shared state: every signal in one `Copy` struct, provided through Leptos
//! context, and the actions that change it (run, head requests, worker responses). The view
//! components in `views.rs` read it with `expect_context::<Page>()`.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::client::Client;
use super::experiment::Outcome;
use super::heatmap::{ColourScale, Look};
use super::{Phase, View, MAX_SIDE};
use crate::analysis::explain::{Explain, MapView, WhatIf};
use crate::worker::protocol::{HeadMap, ModelSummary, Request, Response, RunResult};

#[derive(Clone, Copy)]
pub struct Page {
    pub phase: RwSignal<Phase>,
    /// (phase name, bytes done, bytes total) of the model load.
    pub progress: RwSignal<(String, f64, Option<f64>)>,
    /// (backend, adapter, note).
    pub backend: RwSignal<Option<(String, String, Option<String>)>>,
    pub model: RwSignal<Option<ModelSummary>>,
    pub text: RwSignal<String>,
    pub layer: RwSignal<usize>,
    pub head: RwSignal<usize>,
    pub view: RwSignal<View>,
    /// The query row drawn in the token strip and marked on the map.
    pub query: RwSignal<Option<usize>>,
    pub run: RwSignal<Option<RunResult>>,
    pub map: RwSignal<Option<HeadMap>>,
    /// The selected head's exact rows (short inputs), for exports.
    pub rows: RwSignal<Option<Vec<Vec<f32>>>>,
    pub thumbs: RwSignal<Option<Vec<HeadMap>>>,
    pub error: RwSignal<Option<String>>,
    pub exp_progress: RwSignal<Option<(f64, f64)>>,
    pub exp_outcome: RwSignal<Option<Outcome>>,
    pub embed_open: RwSignal<bool>,
    /// Colour scale, sink hidden, what-if (also in context for every map drawn).
    pub look: Look,
    /// The selected query's row, step by step.
    pub explain: RwSignal<Option<Explain>>,
    /// Every head's pattern scores on the current run.
    pub head_scores: RwSignal<Option<crate::analysis::heads::HeadScores>>,
    /// The induction diagnostic's result and its repeated tokens.
    pub induction: RwSignal<Option<(crate::analysis::heads::Induction, Vec<String>)>>,
    pub induction_running: RwSignal<bool>,
    /// Run as soon as the model is loaded (`?run=1`, or Run pressed while loading).
    pending_run: StoredValue<bool>,
    client: StoredValue<Option<Client>, LocalStorage>,
}

impl Page {
    pub fn new(text: String, layer: usize, head: usize, view: View, run: bool, colour: ColourScale, hide_sink: bool, what_if: WhatIf) -> Self {
        Page {
            phase: RwSignal::new(Phase::LoadingModel),
            progress: RwSignal::new((String::from("download"), 0.0, None)),
            backend: RwSignal::new(None),
            model: RwSignal::new(None),
            text: RwSignal::new(text),
            layer: RwSignal::new(layer),
            head: RwSignal::new(head),
            view: RwSignal::new(view),
            query: RwSignal::new(None),
            run: RwSignal::new(None),
            map: RwSignal::new(None),
            rows: RwSignal::new(None),
            thumbs: RwSignal::new(None),
            error: RwSignal::new(None),
            exp_progress: RwSignal::new(None),
            exp_outcome: RwSignal::new(None),
            embed_open: RwSignal::new(false),
            look: Look { colour: RwSignal::new(colour), hide_sink: RwSignal::new(hide_sink), what_if: RwSignal::new(what_if) },
            explain: RwSignal::new(None),
            head_scores: RwSignal::new(None),
            induction: RwSignal::new(None),
            induction_running: RwSignal::new(false),
            pending_run: StoredValue::new(run),
            client: StoredValue::new_local(None),
        }
    }

    /// Starts the worker and asks it to load `model_url`.
    pub fn start(self, base: &str, model_url: String) {
        match Client::spawn(base, move |_, r| self.on_response(r)) {
            Ok(c) => {
                c.send(&Request::LoadUrl { url: model_url });
                self.client.set_value(Some(c));
            }
            Err(e) => self.fail(e),
        }
    }

    pub fn send(self, req: Request) {
        self.client.with_value(|c| {
            if let Some(c) = c {
                c.send(&req);
            }
        })
    }

    /// Loads a GGUF file the reader opened or dropped.
    pub fn load_file(self, file: web_sys::File) {
        let name = file.name();
        self.phase.set(Phase::LoadingModel);
        self.progress.set(("open".into(), 0.0, Some(file.size())));
        leptos::task::spawn_local(async move {
            match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                Ok(buf) => self.client.with_value(|c| {
                    if let Some(c) = c {
                        c.send_with_bytes(&Request::LoadBytes { name }, Some(buf.unchecked_into()));
                    }
                }),
                Err(e) => self.fail(format!("cannot read {name}: {e:?}")),
            }
        });
    }

    fn fail(self, message: String) {
        self.error.set(Some(message));
        self.phase.set(Phase::Error);
    }

    pub fn start_run(self) {
        if self.model.get_untracked().is_none() {
            self.pending_run.set_value(true);
            return;
        }
        self.phase.set(Phase::Running);
        self.error.set(None);
        self.thumbs.set(None);
        self.send(Request::Run { text: self.text.get_untracked(), layer: self.layer.get_untracked(), head: self.head.get_untracked(), max_side: MAX_SIDE, slot: 0 });
    }

    /// The selected head's map, whole or a (rows, cols) region of it.
    pub fn request_head(self, region: Option<((usize, usize), (usize, usize))>) {
        if self.run.get_untracked().is_none() {
            return;
        }
        self.phase.set(Phase::Running);
        let (rows, cols) = match region {
            Some((r, c)) => (Some(r), Some(c)),
            None => (None, None),
        };
        self.send(Request::Head { layer: self.layer.get_untracked(), head: self.head.get_untracked(), max_side: MAX_SIDE, rows, cols, slot: 0, view: self.map_view() });
    }

    /// What the worker applies to maps (a what-if, the sink hidden).
    pub fn map_view(self) -> MapView {
        MapView { what_if: self.look.what_if.get_untracked(), hide_sink: self.look.hide_sink.get_untracked() }
    }

    /// Asks for the selected query's row explained.
    pub fn request_explain(self) {
        let (Some(q), Some(m)) = (self.query.get_untracked(), self.map.get_untracked()) else { return };
        self.send(Request::Explain { layer: m.layer, head: m.head, query: q.min(m.n_tokens.saturating_sub(1)), slot: 0 });
    }

    /// Layer and/or head from the inputs, clamped to the model.
    pub fn set_layer_head(self, l: Option<usize>, h: Option<usize>) {
        let Some(m) = self.model.get_untracked() else { return };
        if let Some(l) = l {
            self.layer.set(l.min(m.n_layer - 1));
        }
        if let Some(h) = h {
            self.head.set(h.min(m.n_head - 1));
        }
        self.request_head(None);
    }

    /// Opens one head in the head view (from a thumbnail or the sink chart).
    pub fn open_head(self, l: usize, h: usize) {
        self.layer.set(l);
        self.head.set(h);
        self.view.set(View::Head);
        self.request_head(None);
    }

    pub fn choose_view(self, v: View) {
        self.view.set(v);
        if v == View::Model && self.thumbs.get_untracked().is_none() && self.run.get_untracked().is_some() {
            self.send(Request::Thumbs { side: 24, slot: 0 });
        }
        if v == View::Patterns && self.head_scores.get_untracked().is_none() && self.run.get_untracked().is_some() {
            self.send(Request::Heads { slot: 0 });
        }
    }

    pub fn tokens(self) -> Signal<Vec<String>> {
        Signal::derive(move || self.run.with(|r| r.as_ref().map(|r| r.report.tokens.clone()).unwrap_or_default()))
    }

    /// The current result as `attnlab inspect --json` with the selected head's rows.
    pub fn export(self) -> Option<String> {
        self.run.get_untracked().map(|r| super::export_json(&r, self.rows.get_untracked().as_ref(), self.layer.get_untracked(), self.head.get_untracked()))
    }

    fn on_response(self, r: Response) {
        match r {
            Response::Ready => {}
            Response::Progress { phase: p, done, total } if p == "experiment" => self.exp_progress.set(Some((done, total.unwrap_or(done)))),
            Response::Progress { phase: p, done, total } => self.progress.set((p, done, total)),
            Response::Experiment { experiment, rows, cancelled, elapsed_ms } => {
                self.exp_progress.set(None);
                self.exp_outcome.set(Some(Outcome { experiment, rows, cancelled, elapsed_ms, backend: None, shipped: false }));
            }
            Response::Loaded { model: m, backend: b, adapter, note } => {
                self.layer.set(self.layer.get_untracked().min(m.n_layer - 1));
                self.head.set(self.head.get_untracked().min(m.n_head - 1));
                self.model.set(Some(m));
                self.backend.set(Some((b, adapter, note)));
                if matches!(self.phase.get_untracked(), Phase::LoadingModel | Phase::Error) {
                    self.phase.set(Phase::Ready);
                }
                if self.pending_run.get_value() {
                    self.pending_run.set_value(false);
                    self.start_run();
                }
            }
            Response::Result { run: r } => {
                let r = *r;
                let key = format!("{}.{}", r.map.layer, r.map.head);
                self.rows.set(r.report.attention.get(&key).cloned());
                self.map.set(Some(r.map.clone()));
                self.query.set(Some(r.report.ids.len().saturating_sub(1)));
                self.run.set(Some(r));
                self.phase.set(Phase::Done);
                if self.view.get_untracked() == View::Model {
                    self.send(Request::Thumbs { side: 24, slot: 0 });
                }
                self.head_scores.set(None);
                if self.view.get_untracked() == View::Patterns {
                    self.send(Request::Heads { slot: 0 });
                }
                if !self.map_view().is_plain() {
                    self.request_head(None);
                }
                self.request_explain();
            }
            Response::Head { map: m, exact_rows } => {
                // A whole-map answer replaces the exported rows (None for long inputs); a
                // zoomed region leaves them as they are.
                if m.rows == (0, m.n_tokens) && m.cols == (0, m.n_tokens) {
                    self.rows.set(exact_rows);
                }
                let whole = m.rows == (0, m.n_tokens) && m.cols == (0, m.n_tokens);
                self.map.set(Some(m));
                self.phase.set(Phase::Done);
                if whole {
                    self.request_explain();
                }
            }
            Response::Explain { explain } => self.explain.set(Some(*explain)),
            Response::Heads { scores } => self.head_scores.set(Some(*scores)),
            Response::Induction { induction, tokens } => {
                self.induction_running.set(false);
                self.induction.set(Some((*induction, tokens)));
            }
            Response::Thumbs { thumbs } => self.thumbs.set(Some(thumbs)),
            Response::Error { phase: p, message } => {
                if p == "experiment" {
                    self.exp_progress.set(None);
                }
                if p == "induction" {
                    self.induction_running.set(false);
                }
                self.fail(format!("{p}: {message}"));
            }
        }
    }
}
