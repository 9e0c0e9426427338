//! The playground's shared state: every signal in one `Copy` struct, provided through Leptos
//! context, and the actions that change it (run, head requests, worker responses). The view
//! components in `views.rs` read it with `expect_context::<Page>()`.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use std::cell::Cell;
use std::rc::Rc;

use super::client::Client;
use super::engine::{Engine, ModelState};
use super::experiment::Outcome;
use super::heatmap::Look;
use super::{Phase, View, MAX_SIDE};
use crate::analysis::explain::{Explain, MapView};
use crate::analysis::heads::{Ablation, Similarity};
use crate::model::arch::AttnChange;
use crate::worker::protocol::{ablated_slot, BackendChoice, HeadMap, ModelSummary, Request, Response, RunResult};


/// How a [`Page`] reaches the engine: the playground starts its own worker; a widget's
/// figure shares the page's engine for its model ([`Engine`]), in the widget's own slot.
enum Link {
    Own(Client),
    Shared(Rc<Engine>),
}

/// The cost sweep's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct CostResult {
    pub rows: Vec<crate::analysis::cost::CostRow>,
    pub cancelled: bool,
    pub gpu: Option<String>,
}

/// A knock-out's answer: the comparison, the text's tokens, and the likeliest next tokens as
/// (text, p before, p after).
#[derive(Clone, Debug, PartialEq)]
pub struct KnockOut {
    pub ablation: Ablation,
    pub tokens: Vec<String>,
    pub next: Vec<(String, f32, f32)>,
    /// The heads whose maps moved most: (layer, head, largest |Δp|).
    pub changed: Vec<(usize, usize, f32)>,
}

/// Every head's effect on one prediction (see [`crate::flows::head_effects`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Effects {
    pub query: usize,
    /// The token after the query (what the model predicts there).
    pub target: String,
    pub rows: Vec<(usize, usize, f32)>,
    pub cancelled: bool,
}

/// Texts up to this many tokens get the head-similarity matrix as soon as the patterns tab opens.
const AUTO_SIMILARITY_TOKENS: usize = 64;

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
    /// What is shown was drawn from a saved figure (a widget's `result-src`), not by the model:
    /// the first live result replaces it.
    pub poster: RwSignal<bool>,
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
    /// The induction diagnostic's result, its repeated tokens and the best heads' maps.
    pub induction: RwSignal<Option<(crate::analysis::heads::Induction, Vec<String>, Vec<HeadMap>)>>,
    pub induction_running: RwSignal<bool>,
    /// Every pair of heads compared on the current run, clustered.
    pub similarity: RwSignal<Option<Similarity>>,
    pub similarity_running: RwSignal<bool>,
    /// The logit lens of the current run (asked for when its tab opens).
    pub lens: RwSignal<Option<super::lens::LensView>>,
    pub lens_running: RwSignal<bool>,
    /// Clicks and taps on heads pick them for a knock-out instead of opening them (touch has no
    /// shift key); shift-click always picks.
    pub pick_mode: RwSignal<bool>,
    /// The query's row in every head (query, rows layer-major), for "find the head".
    pub query_rows: RwSignal<Option<(usize, Vec<Vec<f32>>)>>,
    /// The key token heads are ranked by (`?k=`), at most the query.
    pub key: RwSignal<Option<usize>>,
    /// All heads drawn as the query's row (bars) instead of whole maps.
    pub row_bars: RwSignal<bool>,
    /// Heads picked for a knock-out (shift-click), not yet applied.
    pub picked: RwSignal<Vec<(usize, usize)>>,
    /// Heads knocked out (in the URL as `ablate=L.H,L.*`); applied to every run.
    pub knocked: RwSignal<Vec<(usize, usize)>>,
    /// The knock-out compared with the plain run.
    pub ablation: RwSignal<Option<KnockOut>>,
    pub ablation_running: RwSignal<bool>,
    /// The head compared before/after the knock-out, and its two maps.
    pub compare: RwSignal<(usize, usize)>,
    pub compare_maps: RwSignal<(Option<HeadMap>, Option<HeadMap>)>,
    /// A what-if through the whole model, in some layers (`?through=`, `?through_layers=`):
    /// applied to every run of the text, like a knock-out.
    pub through: RwSignal<Option<(AttnChange, String)>>,
    /// Its comparison with the plain pass (what, layers, the comparison).
    pub through_result: RwSignal<Option<(AttnChange, String, KnockOut)>>,
    pub through_running: RwSignal<bool>,
    /// Every head knocked out alone: (query, the token after it, (layer, head, Δ log p), cut
    /// short), and the progress of a measurement under way.
    pub effects: RwSignal<Option<Effects>>,
    pub effects_progress: RwSignal<Option<(f64, f64)>>,
    /// The cache policies over a long text (first the shipped run), and the progress of a new one.
    pub streaming: RwSignal<Option<super::streaming::StreamingView>>,
    pub streaming_progress: RwSignal<Option<(f64, f64)>>,
    /// A word through the layers: the two texts and the word (`first`, `second`, `word`), the
    /// answer, and whether one is under way.
    pub pair: RwSignal<(String, String, String)>,
    pub vectors: RwSignal<Option<crate::analysis::vectors::WordVectors>>,
    pub vectors_running: RwSignal<bool>,
    /// The shown head's queries and keys as points (the current run), and whether asked.
    pub qk: RwSignal<Option<crate::analysis::vectors::QkPoints>>,
    pub qk_running: RwSignal<bool>,
    /// Two texts side by side (`first`, `second`), the comparison with the shown head's two
    /// maps, and whether one is under way.
    pub compare_texts: RwSignal<(String, String)>,
    pub compared: RwSignal<Option<(crate::analysis::compare::TextCompare, HeadMap, HeadMap)>>,
    pub compare_running: RwSignal<bool>,
    /// The playground's head tab shows the points (`?view=qk`, or asked for there).
    pub show_qk: RwSignal<bool>,
    /// What the model wrote under each variant of a panel's "write on" (the sinks panel's
    /// caches, the what-if through the model), and the progress of a writing under way.
    pub written: RwSignal<Option<super::write_on::Written>>,
    pub writing: RwSignal<Option<(f64, f64)>>,
    /// The cost-of-attention sweep's answer, and its progress while it runs.
    pub cost: RwSignal<Option<CostResult>>,
    pub cost_progress: RwSignal<Option<(f64, f64)>>,
    /// What the URL asked for that could not be used (bad values, heads beyond the model).
    pub notice: RwSignal<Vec<String>>,
    /// The last run was refused as too long: (tokens, tokens that fit, byte where they end,
    /// why); the page offers to cut the text there.
    pub too_long: RwSignal<Option<(usize, usize, usize, String)>>,
    /// The JSON export waits for the selected head's rows (long inputs).
    export_wanted: StoredValue<bool>,
    /// A model file is loading in place of the current one.
    replacing: StoredValue<bool>,
    /// `layer`/`head` as the URL asked, checked against the model once it is loaded.
    asked: StoredValue<(Option<usize>, Option<usize>)>,
    /// `?backend=webgpu|cpu` (default: the worker decides).
    pub backend_choice: StoredValue<BackendChoice>,
    /// `?ablate=` as written, until the model says how many heads a layer has.
    knocked_spec: StoredValue<Option<String>>,
    /// The id of the latest run request: answers to older ones are dropped.
    run_id: StoredValue<Option<u64>>,
    /// A run was sent and its answer has not come.
    run_pending: StoredValue<bool>,
    /// Ids of map requests for the comparison: (id, after the knock-out).
    compare_requests: StoredValue<Vec<(u64, bool)>>,
    /// The query token the URL asked for (`?q=`), applied to the first result.
    pub asked_query: StoredValue<Option<usize>>,
    /// Run as soon as the model is loaded (on opening, unless `?run=0`; Run pressed while loading).
    pending_run: StoredValue<bool>,
    /// Generate as soon as the model is loaded (`?gen=N`, or Generate pressed while loading).
    pending_gen: StoredValue<bool>,
    link: StoredValue<Option<Link>, LocalStorage>,
    /// Where the worker keeps this figure's run (0: the playground; a widget's own number).
    slot: u32,
    /// The largest map side asked for.
    max_side: usize,
    /// The last explained (run, layer, head, query): the same row is not asked for twice.
    explained: StoredValue<Option<(u64, usize, usize, usize)>>,
    /// Counts results, so that a new run of the same text is explained again.
    run_seq: StoredValue<u64>,
    /// How the latest run's map is shown (sent with it): a view changed since needs a new map.
    run_view: StoredValue<MapView>,
    /// What Generate does (in the URL once a text was written).
    pub gen: RwSignal<crate::generate::GenSettings>,
    /// The generation under way or last finished (cleared by a plain run).
    pub generation: RwSignal<Option<super::generate::GenLive>>,
    /// A generation's tokens are still coming (the page stays `running`).
    gen_pending: StoredValue<bool>,
    /// The id of the "without the cache" replay.
    nocache_id: StoredValue<Option<u64>>,
}

impl Page {
    #[allow(clippy::too_many_arguments)]
    pub fn new(text: String, layer: usize, head: usize, view: View, run: bool, style: super::heatmap::MapStyle, ablate: Option<String>, gen: crate::generate::GenSettings) -> Self {
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
            poster: RwSignal::new(false),
            rows: RwSignal::new(None),
            thumbs: RwSignal::new(None),
            error: RwSignal::new(None),
            exp_progress: RwSignal::new(None),
            exp_outcome: RwSignal::new(None),
            embed_open: RwSignal::new(false),
            look: Look { colour: RwSignal::new(style.colour), palette: RwSignal::new(style.palette), hide_sink: RwSignal::new(style.hide_sink), what_if: RwSignal::new(style.what_if) },
            explain: RwSignal::new(None),
            head_scores: RwSignal::new(None),
            induction: RwSignal::new(None),
            induction_running: RwSignal::new(false),
            similarity: RwSignal::new(None),
            similarity_running: RwSignal::new(false),
            lens: RwSignal::new(None),
            lens_running: RwSignal::new(false),
            picked: RwSignal::new(vec![]),
            pick_mode: RwSignal::new(false),
            query_rows: RwSignal::new(None),
            key: RwSignal::new(None),
            row_bars: RwSignal::new(false),
            knocked: RwSignal::new(vec![]),
            ablation: RwSignal::new(None),
            ablation_running: RwSignal::new(false),
            compare: RwSignal::new((0, 0)),
            compare_maps: RwSignal::new((None, None)),
            knocked_spec: StoredValue::new(ablate),
            backend_choice: StoredValue::new(BackendChoice::Auto),
            notice: RwSignal::new(vec![]),
            asked: StoredValue::new((None, None)),
            cost: RwSignal::new(None),
            streaming: RwSignal::new(None),
            through: RwSignal::new(None),
            effects: RwSignal::new(None),
            effects_progress: RwSignal::new(None),
            written: RwSignal::new(None),
            pair: RwSignal::new(super::vectors::default_pair()),
            vectors: RwSignal::new(None),
            vectors_running: RwSignal::new(false),
            qk: RwSignal::new(None),
            qk_running: RwSignal::new(false),
            show_qk: RwSignal::new(false),
            compare_texts: RwSignal::new(super::compare::default_texts()),
            compared: RwSignal::new(None),
            compare_running: RwSignal::new(false),
            writing: RwSignal::new(None),
            through_result: RwSignal::new(None),
            through_running: RwSignal::new(false),
            streaming_progress: RwSignal::new(None),
            cost_progress: RwSignal::new(None),
            compare_requests: StoredValue::new(vec![]),
            run_id: StoredValue::new(None),
            run_pending: StoredValue::new(false),
            pending_run: StoredValue::new(run),
            pending_gen: StoredValue::new(false),
            asked_query: StoredValue::new(None),
            link: StoredValue::new_local(None),
            slot: 0,
            max_side: MAX_SIDE,
            explained: StoredValue::new(None),
            run_seq: StoredValue::new(0),
            run_view: StoredValue::new(MapView::default()),
            gen: RwSignal::new(gen),
            generation: RwSignal::new(None),
            gen_pending: StoredValue::new(false),
            nocache_id: StoredValue::new(None),
            too_long: RwSignal::new(None),
            export_wanted: StoredValue::new(false),
            replacing: StoredValue::new(false),
        }
    }

    /// Starts the worker and asks it to load `model_url`.
    pub fn start(self, base: &str, model_url: String) {
        match Client::spawn(base, move |id, r| self.on_response(id, r)) {
            Ok(c) => {
                c.send(&Request::LoadUrl { url: model_url, backend: self.backend_choice.get_value() });
                self.link.set_value(Some(Link::Own(c)));
            }
            Err(e) => self.fail(e),
        }
    }

    /// This state as one figure of a widget: its requests go to `slot` and ask for maps of at
    /// most `max_side` cells a side (set before the figure is attached to an engine).
    pub fn in_slot(mut self, slot: u32, max_side: usize) -> Self {
        self.slot = slot;
        self.max_side = max_side;
        self
    }

    /// The worker slot this figure's run lives in.
    pub fn slot(self) -> u32 {
        self.slot
    }

    /// Serves this figure from the page's shared engine (once; later calls do nothing). It
    /// follows the model's state from then on, as the playground follows its own worker.
    pub fn attach(self, engine: Rc<Engine>) {
        if self.link.with_value(|l| l.is_some()) {
            return;
        }
        let state = engine.state.clone();
        self.link.set_value(Some(Link::Shared(engine)));
        Effect::new(move |_| match state.get() {
            ModelState::Ready { model, backend, adapter, note } => self.on_loaded(model, backend, adapter, note),
            ModelState::Loading { phase, done, total } => self.progress.set((phase, done, total)),
            ModelState::Failed(message) => {
                if std::mem::take(&mut *self.pending_run.write_value()) || std::mem::take(&mut *self.pending_gen.write_value()) {
                    self.fail(message);
                }
            }
        });
    }

    /// Sends a request; its id, when a worker is running.
    pub fn send(self, req: Request) -> Option<u64> {
        self.link.with_value(|l| match l.as_ref()? {
            Link::Own(c) => Some(c.send(&req)),
            Link::Shared(e) if matches!(req, Request::Cancel) => {
                e.cancel();
                None
            }
            Link::Shared(e) => {
                // The id is known once sent; answers come on a later turn of the event loop.
                let id = Rc::new(Cell::new(0));
                let known = id.clone();
                id.set(e.request(req, move |r| self.on_response(known.get(), r)));
                Some(id.get())
            }
        })
    }

    /// The URL's unusable values, and the layer/head it asked for (checked on load).
    pub fn set_url_warnings(self, warnings: Vec<String>, asked: (Option<usize>, Option<usize>)) {
        self.notice.set(warnings);
        self.asked.set_value(asked);
    }

    /// A head clicked in a grid or the thumbnails: picked for the knock-out with shift or in
    /// pick mode, else opened.
    pub fn click_head(self, l: usize, h: usize, shift: bool) {
        if shift || self.pick_mode.get_untracked() {
            self.toggle_pick(l, h)
        } else {
            self.open_head(l, h)
        }
    }

    /// The query's row in every head, when the all-heads view needs it and does not have it.
    pub fn request_query_rows(self) {
        let Some(q) = self.query.get_untracked() else { return };
        if self.view.get_untracked() != View::Model || self.run.get_untracked().is_none() || self.run_pending.get_value() {
            return;
        }
        if self.query_rows.with_untracked(|r| r.as_ref().is_some_and(|(rq, _)| *rq == q)) {
            return;
        }
        self.send(Request::QueryRows { query: q, slot: self.slot });
    }

    /// Picks or unpicks a head for the knock-out (shift-click).
    pub fn toggle_pick(self, l: usize, h: usize) {
        self.picked.update(|p| match p.iter().position(|x| *x == (l, h)) {
            Some(i) => {
                p.remove(i);
            }
            None => {
                p.push((l, h));
                p.sort_unstable();
            }
        });
    }

    /// Knocks the picked heads out (the plain run again when none are picked).
    pub fn knock_out(self) {
        self.knocked.set(self.picked.get_untracked());
        self.reapply_knock_out();
    }

    /// The knocked-out heads run against the current run (again after a new run; the picks
    /// stay as they are).
    fn reapply_knock_out(self) {
        let heads = self.knocked.get_untracked();
        self.ablation.set(None);
        self.compare_maps.set((None, None));
        if !heads.is_empty() && self.run.get_untracked().is_some() {
            self.ablation_running.set(true);
            self.send(Request::Ablate { heads, slot: self.slot });
        }
    }

    /// Knocks out the heads `spec` names (`L.H,L.*`; empty: none), once the model says how
    /// many heads it has (a widget's `ablate` attribute; the URL's `?ablate=` on opening).
    pub fn set_knock_out(self, spec: &str) {
        match self.model.with_untracked(|m| m.as_ref().map(|m| (m.n_layer, m.n_head))) {
            Some(dims) if !spec.trim().is_empty() => {
                self.knock_out_spec(spec, dims);
                self.reapply_knock_out();
            }
            Some(_) => self.reset_knock_out(),
            None => self.knocked_spec.set_value(Some(spec.to_string()).filter(|s| !s.trim().is_empty())),
        }
    }

    /// The heads of `spec` picked and knocked out, or a notice saying why not.
    fn knock_out_spec(self, spec: &str, (n_layer, n_head): (usize, usize)) {
        match crate::analysis::heads::parse_heads(spec, n_layer, n_head) {
            Ok(h) => {
                self.picked.set(h.clone());
                self.knocked.set(h);
            }
            Err(_) => {
                let shown: String = spec.chars().take(40).collect();
                self.notice.update(|n| n.push(format!("ablate={shown} is not heads of this model (write L.H or L.* with layers below {n_layer} and heads below {n_head}); nothing is knocked out")));
            }
        }
    }

    /// Runs the text with `what` inside the attention of `layers` (None: back to the plain
    /// model), and every later run of the text too.
    pub fn set_through(self, t: Option<(AttnChange, String)>) {
        self.through.set(t);
        self.reapply_through();
    }

    /// The what-if through the model against the current run.
    fn reapply_through(self) {
        self.through_result.set(None);
        self.through_running.set(false);
        let Some((what, layers)) = self.through.get_untracked() else { return };
        if self.run.with_untracked(|r| r.is_some()) && !self.poster.get_untracked() && self.send(Request::WhatIf { what, layers, slot: self.slot }).is_some() {
            self.through_running.set(true);
        }
    }

    /// Knocks every head out alone and measures Δ log p of the token after the selected query;
    /// the query's row in every head comes too (attention against effect).
    pub fn request_effects(self) {
        let Some(q) = self.query.get_untracked() else { return };
        if self.effects_progress.get_untracked().is_some() || self.run.with_untracked(|r| r.is_none()) || self.poster.get_untracked() {
            return;
        }
        self.effects.set(None);
        if self.send(Request::Effects { query: q, slot: self.slot }).is_some() {
            self.effects_progress.set(Some((0.0, 1.0)));
            self.phase.set(Phase::Running);
            if !self.query_rows.with_untracked(|r| r.as_ref().is_some_and(|(rq, _)| *rq == q)) {
                self.send(Request::QueryRows { query: q, slot: self.slot });
            }
        }
    }

    /// Back to the plain run: nothing knocked out or picked.
    pub fn reset_knock_out(self) {
        self.picked.set(vec![]);
        self.knock_out();
    }

    /// The compared head's map before and after the knock-out.
    pub fn request_compare(self) {
        if self.ablation.get_untracked().is_none() {
            return;
        }
        let (layer, head) = self.compare.get_untracked();
        let ids: Vec<(u64, bool)> = [(self.slot, false), (ablated_slot(self.slot), true)]
            .into_iter()
            .filter_map(|(slot, after)| self.send(Request::Head { layer, head, max_side: self.max_side, rows: None, cols: None, slot, view: self.map_view() }).map(|id| (id, after)))
            .collect();
        self.compare_requests.set_value(ids);
    }

    /// Short texts get the similarity matrix without asking (it costs heads² × n² / 4 steps).
    fn auto_similarity(self) {
        if self.similarity.get_untracked().is_none() && self.run.with_untracked(|r| r.as_ref().is_some_and(|r| r.report.ids.len() <= AUTO_SIMILARITY_TOKENS)) {
            self.request_similarity();
        }
    }

    /// What each layer predicts on the current run (once per run).
    pub fn request_lens(self) {
        if self.run.get_untracked().is_some() && self.lens.get_untracked().is_none() && !self.lens_running.get_untracked() {
            self.lens_running.set(true);
            if self.send(Request::Lens { slot: self.slot }).is_some() {
                self.phase.set(Phase::Running);
            }
        }
    }

    /// `text` under each cache policy (a window of `window` keys, `sinks` first tokens kept).
    pub fn request_streaming(self, text: String, window: usize, sinks: usize) {
        if self.streaming_progress.get_untracked().is_none() {
            self.streaming_progress.set(Some((0.0, 4.0)));
            self.error.set(None);
            if self.send(Request::Streaming { text, window, sinks }).is_none() {
                self.streaming_progress.set(None);
            } else {
                self.phase.set(Phase::Running);
            }
        }
    }

    /// The model writes on after `text` (`None`: the current run's text) under each of
    /// `variants`, for the panel `owner` ("sinks", "through").
    pub fn request_write_on(self, owner: &'static str, text: Option<String>, variants: Vec<crate::generate::Variant>) {
        use super::write_on::{Written, WRITE_TOKENS};
        if self.writing.get_untracked().is_some() || (text.is_none() && self.run.with_untracked(|r| r.is_none())) {
            return;
        }
        let total = variants.len();
        self.error.set(None);
        if self.send(Request::WriteOn { text, variants, max_tokens: WRITE_TOKENS, slot: self.slot }).is_some() {
            self.written.set(Some(Written { owner, rows: vec![], total, cancelled: false }));
            self.writing.set(Some((0.0, (total * WRITE_TOKENS) as f64)));
            self.phase.set(Phase::Running);
        }
    }

    /// A word through the layers of the two texts of `pair`.
    pub fn request_vectors(self) {
        if self.vectors_running.get_untracked() || self.poster.get_untracked() || self.model.with_untracked(|m| m.is_none()) {
            return;
        }
        let (a, b, word) = self.pair.get_untracked();
        self.error.set(None);
        if self.send(Request::Vectors { a, b, word, at: (None, None) }).is_some() {
            self.vectors_running.set(true);
            self.phase.set(Phase::Running);
        }
    }

    /// The two texts of `compare_texts` compared, the shown head drawn on both.
    pub fn request_two_texts(self) {
        if self.compare_running.get_untracked() || self.poster.get_untracked() || self.model.with_untracked(|m| m.is_none()) {
            return;
        }
        let (a, b) = self.compare_texts.get_untracked();
        let (layer, head) = (self.layer.get_untracked(), self.head.get_untracked());
        self.error.set(None);
        if self.send(Request::Compare { a, b, layer, head, max_side: self.max_side }).is_some() {
            self.compare_running.set(true);
            self.phase.set(Phase::Running);
        }
    }

    /// The shown head's queries and keys as points, unless they are on screen already.
    pub fn request_qk(self) {
        let (layer, head) = (self.layer.get_untracked(), self.head.get_untracked());
        let shown = self.qk.with_untracked(|q| q.as_ref().is_some_and(|q| (q.layer, q.head) == (layer, head)));
        if shown || self.qk_running.get_untracked() || self.poster.get_untracked() || self.run.with_untracked(|r| r.is_none()) {
            return;
        }
        if self.send(Request::Qk { layer, head, slot: self.slot }).is_some() {
            self.qk_running.set(true);
            self.phase.set(Phase::Running);
        }
    }

    /// Every pair of heads compared, clustered.
    pub fn request_similarity(self) {
        if self.run.get_untracked().is_some() && !self.similarity_running.get_untracked() {
            self.similarity_running.set(true);
            self.send(Request::Similarity { slot: self.slot });
        }
    }

    /// Loads a GGUF file the reader opened or dropped.
    pub fn load_file(self, file: web_sys::File) {
        use crate::worker::session::MAX_MODEL_FILE;
        let name = file.name();
        let gb = |b: f64| b / 1e9;
        // Fail fast, before reading the file: too large for the engine's memory...
        if file.size() > MAX_MODEL_FILE as f64 {
            return self.fail(format!("{name} is {:.1} GB: the engine's WebAssembly memory ends at 4 GiB and the model must run beside its file, so files up to {:.1} GB can be opened here (the command line has no such limit)", gb(file.size()), gb(MAX_MODEL_FILE as f64)));
        }
        leptos::task::spawn_local(async move {
            // ...or not a GGUF file: its first 8 bytes say so (magic and version).
            let head = wasm_bindgen_futures::JsFuture::from(file.slice_with_f64_and_f64(0.0, 8.0).map(|b| b.array_buffer()).unwrap_or_else(|_| file.array_buffer())).await;
            let head = head.map(|b| js_sys::Uint8Array::new(&b).to_vec()).unwrap_or_default();
            if let Err(e) = crate::model::gguf::check_magic(&head) {
                return self.fail(format!("{name}: {e}"));
            }
            // A run under way belongs to the old model: its answer is dropped (the worker drops
            // what it had queued and stops an experiment). What is shown stays until the new
            // model has loaded (a file that fails to load loses nothing); then the text runs on it.
            self.pending_run.set_value(self.run.get_untracked().is_some() || self.run_pending.get_value());
            self.run_id.set_value(None);
            self.run_pending.set_value(false);
            self.replacing.set_value(true);
            self.error.set(None);
            self.phase.set(Phase::LoadingModel);
            self.progress.set(("open".into(), 0.0, Some(file.size())));
            match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await {
                // (Only the playground opens files: it has a worker of its own.)
                Ok(buf) => self.link.with_value(|l| {
                    if let Some(Link::Own(c)) = l {
                        c.send_with_bytes(&Request::LoadBytes { name, backend: self.backend_choice.get_value() }, Some(buf.unchecked_into()));
                    }
                }),
                Err(e) => {
                    self.replacing.set_value(false);
                    self.fail(format!("cannot read {name}: {e:?}"))
                }
            }
        });
    }

    /// Forgets every result of the previous model.
    fn clear_results(self) {
        self.run.set(None);
        self.map.set(None);
        self.rows.set(None);
        self.thumbs.set(None);
        self.query_rows.set(None);
        self.explain.set(None);
        self.head_scores.set(None);
        self.similarity.set(None);
        self.similarity_running.set(false);
        self.lens.set(None);
        self.lens_running.set(false);
        self.ablation.set(None);
        self.ablation_running.set(false);
        self.through_result.set(None);
        self.through_running.set(false);
        self.effects.set(None);
        self.effects_progress.set(None);
        self.compare_maps.set((None, None));
        // What was written after the old text (the sinks panel writes after its own).
        if self.written.with_untracked(|w| w.as_ref().is_some_and(|w| w.owner == "through")) && self.writing.get_untracked().is_none() {
            self.written.set(None);
        }
        self.induction.set(None);
        self.induction_running.set(false);
        self.cost.set(None);
        self.cost_progress.set(None);
        self.too_long.set(None);
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
        self.begin_run();
        self.run_view.set_value(self.map_view());
        let id = self.send(Request::Run { text: self.text.get_untracked(), layer: self.layer.get_untracked(), head: self.head.get_untracked(), max_side: self.max_side, slot: self.slot, view: self.map_view() });
        self.run_id.set_value(id);
        self.run_pending.set_value(id.is_some());
    }

    /// What every run (plain or writing) resets: a generation under way is superseded and
    /// nothing of it stays on screen.
    fn begin_run(self) {
        self.phase.set(Phase::Running);
        self.error.set(None);
        self.too_long.set(None);
        self.thumbs.set(None);
        self.progress.set(("run".into(), 0.0, None));
        self.generation.set(None);
        self.gen_pending.set_value(false);
        self.nocache_id.set_value(None);
    }

    /// The model writes after the text (first the text's own run, then a token per step);
    /// `forced`: the first tokens to write instead of sampling (a branch), after `ids`.
    pub fn start_generate(self, forced: Vec<u32>) {
        self.write_after(None, forced);
    }

    fn write_after(self, ids: Option<Vec<u32>>, forced: Vec<u32>) {
        if self.model.get_untracked().is_none() {
            self.pending_gen.set_value(true);
            return;
        }
        self.begin_run();
        let req = self.writer().request(self.text.get_untracked(), ids, forced, (self.layer.get_untracked(), self.head.get_untracked(), self.max_side), self.slot);
        let id = self.send(req);
        self.run_id.set_value(id);
        self.run_pending.set_value(id.is_some());
        self.gen_pending.set_value(id.is_some());
    }

    /// The writing state and actions the generation views take from context.
    pub fn writer(self) -> super::generate::Writer {
        super::generate::Writer {
            gen: self.gen,
            live: self.generation,
            model: self.model.into(),
            busy: Signal::derive(move || matches!(self.phase.get(), Phase::Running | Phase::LoadingModel)),
            start: Callback::new(move |_| self.start_generate(vec![])),
            stop: Callback::new(move |_| self.stop_generate()),
            branch: Callback::new(move |(t, tok)| self.branch(t, tok)),
            without_cache: Callback::new(move |_| self.generate_without_cache()),
        }
    }

    /// Stops the writing after the current token.
    pub fn stop_generate(self) {
        if self.gen_pending.get_value() {
            self.send(Request::Cancel);
        }
    }

    /// Writes `token` at step `t` instead of what was written, and continues from there.
    pub fn branch(self, t: usize, token: u32) {
        if let Some((ids, forced)) = self.writer().branch_from(t, token) {
            self.write_after(Some(ids), forced);
        }
    }

    /// The same steps again without the cache, for their times.
    pub fn generate_without_cache(self) {
        if let Some(req) = self.writer().replay_request(self.slot) {
            let id = self.send(req);
            self.nocache_id.set_value(id);
        }
    }

    /// The selected head's map, whole or a (rows, cols) region of it.
    pub fn request_head(self, region: Option<((usize, usize), (usize, usize))>) {
        // While a run is under way its result will ask for the head chosen by then.
        if self.run.get_untracked().is_none() || self.run_pending.get_value() {
            return;
        }
        self.phase.set(Phase::Running);
        let (rows, cols) = match region {
            Some((r, c)) => (Some(r), Some(c)),
            None => (None, None),
        };
        self.send(Request::Head { layer: self.layer.get_untracked(), head: self.head.get_untracked(), max_side: self.max_side, rows, cols, slot: self.slot, view: self.map_view() });
    }

    /// What the worker applies to maps (a what-if, the sink hidden).
    pub fn map_view(self) -> MapView {
        MapView { what_if: self.look.what_if.get_untracked(), hide_sink: self.look.hide_sink.get_untracked() }
    }

    /// Asks for the selected query's row explained.
    /// (Once per run, head and query: a new result, a new head map and a new query all ask.)
    pub fn request_explain(self) {
        if !self.shows_explain() {
            return;
        }
        let (Some(q), Some(m)) = (self.query.get_untracked(), self.map.get_untracked()) else { return };
        let query = q.min(m.n_tokens.saturating_sub(1));
        let key = (self.run_seq.get_value(), m.layer, m.head, query);
        if self.explained.get_value() == Some(key) {
            return;
        }
        if self.send(Request::Explain { layer: m.layer, head: m.head, query, slot: self.slot }).is_some() {
            self.explained.set_value(Some(key));
        }
    }

    /// The selected query's row step by step is drawn: in the playground's head tab (its
    /// "Inside this head" part), or in a figure of that part alone.
    fn shows_explain(self) -> bool {
        match self.view.get_untracked() {
            View::Inside => true,
            View::Head => self.is_playground(),
            _ => false,
        }
    }

    /// The playground (all views in one page), not one figure of a widget.
    fn is_playground(self) -> bool {
        self.slot == 0
    }

    /// Thumbnails of every head for the views that draw them; the figure is `running` until
    /// they come (a widget's model view is done when its thumbnails are drawn).
    fn request_thumbs(self) {
        if self.send(Request::Thumbs { side: 24, slot: self.slot }).is_some() && self.view.get_untracked() == View::Model {
            self.phase.set(Phase::Running);
        }
    }

    /// An answer a view waited for came: done, unless a run or a generation is still under way.
    fn view_answered(self) {
        if self.phase.get_untracked() == Phase::Running && !self.run_pending.get_value() && !self.gen_pending.get_value() {
            self.phase.set(Phase::Done);
        }
    }

    /// A lost-in-the-middle experiment (the figure is `running` until its results come).
    pub fn start_experiment(self, e: crate::analysis::position::Experiment) {
        self.exp_progress.set(Some((0.0, 1.0)));
        self.error.set(None);
        if self.send(Request::Experiment { experiment: e }).is_some() {
            self.phase.set(Phase::Running);
        } else {
            self.exp_progress.set(None);
        }
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
    /// (A widget keeps its one view: there it only selects the head.)
    pub fn open_head(self, l: usize, h: usize) {
        self.layer.set(l);
        self.head.set(h);
        if self.slot == 0 {
            self.view.set(View::Head);
        }
        self.request_head(None);
    }

    pub fn choose_view(self, v: View) {
        self.view.set(v);
        // A saved figure is drawn from what it holds (the worker has no run of it).
        if self.poster.get_untracked() {
            return;
        }
        if v == View::Model && self.thumbs.get_untracked().is_none() && self.run.get_untracked().is_some() {
            self.request_thumbs();
        }
        self.request_query_rows();
        if v == View::Lens {
            self.request_lens();
        }
        if v == View::Qk {
            self.request_qk();
        }
        if v == View::Compare && self.compared.with_untracked(|c| c.is_none()) && self.run.with_untracked(|r| r.is_some()) {
            self.request_two_texts();
        }
        if matches!(v, View::Vectors | View::Lens) && self.vectors.with_untracked(|x| x.is_none()) && self.run.with_untracked(|r| r.is_some()) {
            self.request_vectors();
        }
        if v == View::Patterns && self.run.get_untracked().is_some() {
            if self.head_scores.get_untracked().is_none() {
                self.send(Request::Heads { slot: self.slot });
            }
            if self.thumbs.get_untracked().is_none() {
                self.request_thumbs();
            }
            self.auto_similarity();
        }
        if v == View::Similarity && self.similarity.get_untracked().is_none() {
            self.request_similarity();
        }
        self.request_explain();
    }

    pub fn tokens(self) -> Signal<Vec<String>> {
        Signal::derive(move || self.run.with(|r| r.as_ref().map(|r| r.report.tokens.clone()).unwrap_or_default()))
    }

    /// Downloads the current result as JSON; a long input's rows are asked for first.
    pub fn export_download(self) {
        let Some(run) = self.run.get_untracked() else { return };
        if self.rows.get_untracked().is_none() && run.report.ids.len() > crate::worker::session::EXACT_ROWS_LIMIT {
            self.export_wanted.set_value(true);
            self.send(Request::Rows { layer: self.layer.get_untracked(), head: self.head.get_untracked(), slot: self.slot });
            return;
        }
        if let Some(json) = self.export() {
            super::download("attnlab.json", "application/json", &json);
        }
    }

    /// Cuts the text where the tokens that fit end, and runs it.
    pub fn truncate_and_run(self) {
        let Some((_, _, keep, _)) = self.too_long.get_untracked() else { return };
        let text = self.text.get_untracked();
        let mut cut = keep.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.set(text[..cut].to_string());
        self.start_run();
    }

    /// The current result as `attnlab inspect --json` with the selected head's rows.
    pub fn export(self) -> Option<String> {
        let json = self.run.get_untracked().map(|r| super::export_json(&r, self.rows.get_untracked().as_ref(), self.layer.get_untracked(), self.head.get_untracked()))?;
        let json = super::generate::with_generation(json, self.generation.get_untracked().as_ref());
        Some(super::lens::with_lens(json, self.lens.get_untracked().as_ref()))
    }

    /// The model is loaded (or, after a GPU failure, served by another backend): the URL's
    /// heads checked against it, and what waited for it started.
    fn on_loaded(self, m: ModelSummary, b: String, adapter: String, note: Option<String>) {
        if std::mem::take(&mut *self.replacing.write_value()) {
            self.clear_results();
        }
        let (m_layers, m_heads) = (m.n_layer, m.n_head);
        self.layer.set(self.layer.get_untracked().min(m.n_layer - 1));
        self.head.set(self.head.get_untracked().min(m.n_head - 1));
        self.model.set(Some(m));
        self.backend.set(Some((b, adapter, note)));
        if matches!(self.phase.get_untracked(), Phase::LoadingModel | Phase::Error) {
            self.phase.set(Phase::Ready);
        }
        if let Some(spec) = self.knocked_spec.write_value().take() {
            self.knock_out_spec(&spec, (m_layers, m_heads));
        }
        // A layer or head beyond this model: the last one is shown, and we say so.
        let (al, ah) = self.asked.get_value();
        self.asked.set_value((None, None));
        if let Some(l) = al.filter(|l| *l >= m_layers) {
            self.notice.update(|n| n.push(format!("layer={l} is beyond this model's {m_layers} layers; layer {} is shown", m_layers - 1)));
        }
        if let Some(h) = ah.filter(|h| *h >= m_heads) {
            self.notice.update(|n| n.push(format!("head={h} is beyond this model's {m_heads} heads per layer; head {} is shown", m_heads - 1)));
        }
        if self.pending_gen.get_value() {
            self.pending_gen.set_value(false);
            self.pending_run.set_value(false);
            self.start_generate(vec![]);
        } else if self.pending_run.get_value() {
            self.pending_run.set_value(false);
            self.start_run();
        }
    }

    fn on_response(self, id: u64, r: Response) {
        match r {
            Response::Ready => {}
            Response::Progress { phase: p, .. } if matches!(p.as_str(), "knock-out" | "lens" | "what-if") => {}
            Response::Progress { phase: p, done, total } if p == "cost" => self.cost_progress.set(Some((done, total.unwrap_or(done)))),
            Response::Progress { phase: p, done, total } if p == "streaming" => self.streaming_progress.set(Some((done, total.unwrap_or(done)))),
            Response::Progress { phase: p, done, total } if p == "effects" => self.effects_progress.set(Some((done, total.unwrap_or(done)))),
            Response::Progress { phase: p, done, total } if p == "writing" => self.writing.set(Some((done, total.unwrap_or(done)))),
            Response::Vectors { vectors } => {
                self.vectors_running.set(false);
                self.vectors.set(Some(*vectors));
                self.view_answered();
            }
            Response::Compare { compare, maps } => {
                self.compare_running.set(false);
                let (a, b) = *maps;
                self.compared.set(Some((*compare, a, b)));
                self.view_answered();
            }
            Response::Qk { points } => {
                self.qk_running.set(false);
                self.qk.set(Some(*points));
                // The head changed meanwhile: ask for the one shown.
                self.request_qk();
                self.view_answered();
            }
            Response::Written { written, total, cancelled } => {
                if written.len() >= total || cancelled {
                    self.writing.set(None);
                    self.view_answered();
                }
                self.written.update(|w| {
                    if let Some(w) = w {
                        w.rows = written;
                        w.cancelled = cancelled;
                    }
                });
            }
            Response::Effects { query, target, effects, cancelled } => {
                self.effects_progress.set(None);
                self.effects.set(Some(Effects { query, target, rows: effects, cancelled }));
                self.view_answered();
            }
            Response::Streaming { streaming, tokens } => {
                self.streaming_progress.set(None);
                self.streaming.set(Some(super::streaming::StreamingView { streaming: *streaming, tokens, shipped: false }));
                self.view_answered();
            }
            Response::Cost { rows, cancelled, gpu } => {
                self.cost_progress.set(None);
                self.cost.set(Some(CostResult { rows, cancelled, gpu }));
            }
            Response::Progress { phase: p, done, total } if p == "experiment" => self.exp_progress.set(Some((done, total.unwrap_or(done)))),
            Response::Progress { phase: p, done, total } => self.progress.set((p, done, total)),
            Response::Experiment { experiment, rows, cancelled, elapsed_ms } => {
                self.exp_progress.set(None);
                self.exp_outcome.set(Some(Outcome { experiment, rows, cancelled, elapsed_ms, backend: None, shipped: false }));
                self.poster.set(false);
                self.view_answered();
            }
            Response::Loaded { model, backend, adapter, note } => self.on_loaded(model, backend, adapter, note),
            Response::Token { ms, .. } if self.nocache_id.get_value() == Some(id) => self.writer().on_replay(Some(ms), None),
            Response::Generated { generation } if self.nocache_id.get_value() == Some(id) => {
                self.nocache_id.set_value(None);
                self.writer().on_replay(None, Some(&generation));
            }
            // Only the latest run is ever shown.
            Response::Result { .. } | Response::Superseded | Response::TooLong { .. } | Response::Token { .. } | Response::Generated { .. } if self.run_id.get_value() != Some(id) => {}
            Response::Token { t, n_prompt, token, ms, kv_cache_bytes, map } => {
                self.run_pending.set_value(false);
                self.writer().on_token(t, n_prompt, token, ms, kv_cache_bytes, map, self.run, self.map);
            }
            Response::Generated { generation } => {
                self.gen_pending.set_value(false);
                self.writer().on_generated(&generation);
                // The run of the whole text follows (its result ends the `running` state).
                self.run_pending.set_value(true);
            }
            Response::TooLong { n, max, keep_bytes, why } => {
                self.run_pending.set_value(false);
                self.too_long.set(Some((n, max, keep_bytes, why)));
                self.phase.set(if self.run.get_untracked().is_some() { Phase::Done } else { Phase::Ready });
            }
            Response::Rows { layer, head, rows } => {
                // Only the selected head's rows belong to the export.
                if (layer, head) == (self.layer.get_untracked(), self.head.get_untracked()) {
                    self.rows.set(Some(rows));
                    if std::mem::take(&mut *self.export_wanted.write_value()) {
                        self.export_download();
                    }
                }
            }
            Response::Error { ref phase, .. } if (phase == "run" || phase == "generate") && self.run_id.get_value().is_some_and(|r| r != id) => {}
            Response::Superseded => {}
            Response::Result { run: r } => {
                self.run_pending.set_value(false);
                self.run_seq.update_value(|n| *n += 1);
                let r = *r;
                let key = crate::analysis::HeadId::key(r.map.layer, r.map.head);
                let (map_layer, map_head) = (r.map.layer, r.map.head);
                self.rows.set(r.report.attention.get(&key).cloned());
                self.map.set(Some(r.map.clone()));
                // The URL's query token on the first result (clamped to the text), else the last token.
                let last = r.report.ids.len().saturating_sub(1);
                let asked = self.asked_query.write_value().take();
                self.query.set(Some(asked.map(|q| q.min(last)).unwrap_or(last)));
                let q = self.query.get_untracked().unwrap_or(last);
                if self.key.get_untracked().is_some_and(|k| k > q) {
                    self.key.set(None);
                }
                self.query_rows.set(None);
                self.run.set(Some(r));
                self.poster.set(false);
                // A generation's first result is the prompt's: the page runs on while it writes.
                self.phase.set(if self.gen_pending.get_value() { Phase::Running } else { Phase::Done });
                if self.view.get_untracked() == View::Model {
                    self.request_thumbs();
                    self.request_query_rows();
                }
                self.head_scores.set(None);
                self.similarity.set(None);
                self.lens.set(None);
                if self.view.get_untracked() == View::Lens {
                    self.request_lens();
                }
                self.qk.set(None);
                match self.view.get_untracked() {
                    View::Qk => self.request_qk(),
                    View::Vectors | View::Lens if self.vectors.with_untracked(|v| v.is_none()) => self.request_vectors(),
                    View::Compare if self.compared.with_untracked(|c| c.is_none()) => self.request_two_texts(),
                    _ => {}
                }
                match self.view.get_untracked() {
                    View::Patterns => {
                        self.send(Request::Heads { slot: self.slot });
                        self.request_thumbs();
                        self.auto_similarity();
                    }
                    // A widget of the similarity alone asks whatever the text's length.
                    View::Similarity => self.request_similarity(),
                    _ => {}
                }
                // The knock-out and the what-if through the model follow the text.
                self.reapply_knock_out();
                self.reapply_through();
                // A head or a view chosen while the run was under way needs its own map.
                let changed = (self.layer.get_untracked(), self.head.get_untracked()) != (map_layer, map_head);
                if changed || self.map_view() != self.run_view.get_value() {
                    self.request_head(None);
                }
                self.request_explain();
            }
            Response::Head { map: m, .. } if self.compare_requests.with_value(|r| r.iter().any(|(i, _)| *i == id)) => {
                let after = self.compare_requests.with_value(|r| r.iter().any(|(i, a)| *i == id && *a));
                self.compare_maps.update(|(b, a)| if after { *a = Some(m) } else { *b = Some(m) });
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
            Response::QueryRows { query, rows } => {
                if self.query.get_untracked() == Some(query) {
                    // No key chosen yet: the earlier token (not the first, not itself) that the
                    // query attends to most on average over heads, so the ranking shows at once.
                    if self.key.get_untracked().is_none_or(|k| k > query) {
                        self.key.set(crate::analysis::heads::likeliest_key(&rows, query));
                    }
                    self.query_rows.set(Some((query, rows)));
                }
            }
            Response::Heads { scores } => self.head_scores.set(Some(*scores)),
            Response::Induction { induction, tokens, maps } => {
                self.induction_running.set(false);
                self.induction.set(Some((*induction, tokens, maps)));
            }
            Response::Similarity { similarity } => {
                self.similarity_running.set(false);
                self.similarity.set(Some(*similarity));
            }
            Response::Lens { lens, vocab } => {
                self.lens_running.set(false);
                // A lens of an older run (the text changed meanwhile) is dropped.
                if self.run.with_untracked(|r| r.as_ref().is_some_and(|r| r.report.ids == lens.ids)) {
                    self.lens.set(Some(super::lens::LensView { lens: *lens, vocab: vocab.into_iter().collect() }));
                }
                self.view_answered();
            }
            Response::Ablation { ablation, tokens, next, changed } => {
                self.ablation_running.set(false);
                // A later knock-out (or a reset) supersedes this one.
                if self.knocked.get_untracked().iter().map(|&(l, h)| crate::analysis::HeadId::key(l, h)).collect::<Vec<_>>() != ablation.heads {
                    return;
                }
                // Compare the head that moved most (or the one after the knocked-out layers).
                let deepest = self.knocked.get_untracked().iter().map(|x| x.0).max().unwrap_or(0);
                let n_layer = self.model.get_untracked().map(|m| m.n_layer).unwrap_or(1);
                self.compare.set(changed.first().map(|c| (c.0, c.1)).unwrap_or(((deepest + 1).min(n_layer - 1), 0)));
                self.ablation.set(Some(KnockOut { ablation: *ablation, tokens, next, changed }));
                self.request_compare();
            }
            Response::WhatIf { what, layers, comparison, tokens, next } => {
                // A later choice (or none) supersedes this answer.
                if self.through.get_untracked().as_ref() == Some(&(what, layers.clone())) {
                    self.through_running.set(false);
                    self.through_result.set(Some((what, layers, KnockOut { ablation: *comparison, tokens, next, changed: vec![] })));
                }
            }
            Response::Thumbs { thumbs } => {
                self.thumbs.set(Some(thumbs));
                self.view_answered();
            }
            // The worker let go of this figure's run (many widgets, long texts): run it again.
            Response::Error { ref phase, ref message } if matches!(phase.as_str(), "map" | "thumbnails") && message == "run a text first" && self.run.with_untracked(|r| r.is_some()) && !self.poster.get_untracked() && !self.run_pending.get_value() => self.start_run(),
            Response::Error { phase: p, message } => {
                if matches!(p.as_str(), "load" | "open" | "download") {
                    // The old model stays loaded, and what it showed stays.
                    self.replacing.set_value(false);
                    self.pending_run.set_value(false);
                }
                if p == "run" || p == "generate" {
                    self.run_pending.set_value(false);
                    self.gen_pending.set_value(false);
                    self.writer().on_failed();
                }
                if p == "experiment" {
                    self.exp_progress.set(None);
                }
                match p.as_str() {
                    "induction" => self.induction_running.set(false),
                    "similarity" => self.similarity_running.set(false),
                    "knock-out" => self.ablation_running.set(false),
                    "what-if" => self.through_running.set(false),
                    "effects" => self.effects_progress.set(None),
                    "writing" => self.writing.set(None),
                    "vectors" => self.vectors_running.set(false),
                    "queries and keys" => self.qk_running.set(false),
                    "compare" => self.compare_running.set(false),
                    "cost" => self.cost_progress.set(None),
                    "streaming" => self.streaming_progress.set(None),
                    _ => {}
                }
                self.fail(format!("{p}: {message}"));
            }
        }
    }
}
