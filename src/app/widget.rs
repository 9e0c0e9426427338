//! `<attn-lab>`: one figure of the playground, embeddable any number of times in a course
//! page. `dist/embed.js` defines the element and mounts this into its shadow root; all of a
//! page's widgets share one engine per model ([`super::engine`]).
//!
//! Contract, per element (never global): `el.dataset.state` `idle` → `loading-model` →
//! `running` → `done` (or `error`); `el.dataset.backend` `webgpu`|`cpu` once live;
//! `el.dataset.source` `static` (drawn from `result-src`) or `live`; `el.dataset.view` the view
//! shown; `el.exportJson()`; an `attnlab-statechange` event on every change.
//!
//! A widget is one figure of the playground's state ([`Page`]): the same requests, answers
//! and components, on the page's shared engine in the widget's own slot; `W` adds what only an
//! element has (its attributes, a poster from `result-src`, a tour).

use std::rc::Rc;

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::engine::{resolve, Engine, ModelState};
use super::experiment::{shipped_outcome, LostInTheMiddle, Outcome, SHIPPED_POSITION};
use super::heatmap::{png_2x, Heatmap};
use super::panels::{ModelView, SinkPanel, TokenStrip};
use super::state::Page;
use super::{download, download_url, export_json, Phase, View, DEFAULT_MODEL_URL};
use super::fetch::{fetch_text, fetch_text_capped};
use crate::poster::{parse_report, run_from_report, thumbs_from_report};
use crate::worker::protocol::{HeadMap, RunResult};

/// The widget's styles, inside its shadow root (nothing leaks in or out).
const WIDGET_CSS: &str = include_str!("../../www/widget.css");
/// Largest map side a widget asks for (it is at most ~600 px wide).
const WIDGET_SIDE: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controls {
    None,
    Compact,
    Full,
}

/// Sets each checked setting as the element's attribute (`None`: removed, back to its default).
fn set_attributes(host: &web_sys::HtmlElement, settings: &[(&str, Option<String>)]) {
    for (name, value) in settings {
        let _ = match value {
            Some(v) => host.set_attribute(name, v),
            None => host.remove_attribute(name),
        };
    }
}

/// Everything a widget shows, as signals (the handle writes them from attributes).
#[derive(Clone, Copy)]
struct W {
    text: RwSignal<String>,
    layer: RwSignal<usize>,
    head: RwSignal<usize>,
    query: RwSignal<Option<usize>>,
    /// The `query` attribute (None: the last token).
    query_attr: RwSignal<Option<usize>>,
    view: RwSignal<View>,
    controls: RwSignal<Controls>,
    theme: RwSignal<String>,
    /// The `scale` attribute (linear|sqrt|log): how maps and thumbnails are coloured.
    look: super::heatmap::Look,
    phase: RwSignal<Phase>,
    /// Drawn from `result-src` rather than by the model.
    poster: RwSignal<bool>,
    run: RwSignal<Option<RunResult>>,
    map: RwSignal<Option<HeadMap>>,
    rows: RwSignal<Option<Vec<Vec<f32>>>>,
    thumbs: RwSignal<Option<Vec<HeadMap>>>,
    /// `view="lens"`: the logit lens of the run, asked for once the run is in.
    lens: RwSignal<Option<super::lens::LensView>>,
    lens_running: RwSignal<bool>,
    outcome: RwSignal<Option<Outcome>>,
    exp_progress: RwSignal<Option<(f64, f64)>>,
    error: RwSignal<Option<String>>,
    notice: RwSignal<Option<String>>,
    model: RwSignal<ModelState>,
    /// `view="generate"`: what Generate does (attributes `gen`, `temperature`, `top-k`,
    /// `top-p`, `seed`, `chat`), what was written, and whether tokens are still coming.
    gen: RwSignal<crate::generate::GenSettings>,
    generation: RwSignal<Option<super::generate::GenLive>>,
    writer: StoredValue<Option<super::generate::Writer>>,
    /// `tour=`: the guided tour and the step shown.
    tour: RwSignal<Option<crate::tour::Tour>>,
    step: RwSignal<usize>,
    /// embed.js asked the figure to start (scrolled near, or eager).
    started: StoredValue<bool>,
    /// A tour is being fetched (the figure starts with its first step).
    tour_loading: StoredValue<bool>,
    /// `present`: large type and strong contrast (presenting to a room).
    present: RwSignal<bool>,
    /// `panels`: the parts of the view kept (None: all of them).
    panels: RwSignal<Option<Vec<String>>>,
}

thread_local! {
    static NEXT_SLOT: std::cell::Cell<u32> = const { std::cell::Cell::new(1) };
}

fn attr(host: &web_sys::HtmlElement, name: &str) -> Option<String> {
    host.get_attribute(name)
}

/// The views a widget draws (`view=` attribute; empty or absent: `head`).
pub const WIDGET_VIEWS: [View; 17] = [
    View::Head,
    View::Model,
    View::Sinks,
    View::Position,
    View::Tokens,
    View::Generate,
    View::Lens,
    View::Lab,
    View::Inside,
    View::Patterns,
    View::Similarity,
    View::KnockOut,
    View::Cost,
    View::Streaming,
    View::Vectors,
    View::Qk,
    View::Compare,
];

/// The element's settings, read and checked as the playground's URL ([`crate::settings::read`]).
fn settings(host: &web_sys::HtmlElement) -> crate::settings::Restore {
    crate::settings::read(&|k| attr(host, k), &[])
}

/// What was refused of setting `name` (its words), if anything.
fn refused<'a>(s: &'a crate::settings::Restore, name: &str) -> Option<&'a String> {
    let spelled = [format!("{name}="), format!("{}=", name.replace('-', "_"))];
    s.dropped.iter().find(|d| spelled.iter().any(|p| d.starts_with(p.as_str())))
}

/// The view the settings name (none: `head`), or the words for one the widget does not draw.
fn widget_view(s: &crate::settings::Restore) -> Result<View, String> {
    match (s.get("view").and_then(View::parse), refused(s, "view")) {
        (Some(v), _) if WIDGET_VIEWS.contains(&v) => Ok(v),
        (_, Some(why)) => Err(why.clone()),
        _ => Ok(View::Head),
    }
}

fn parse_controls(s: Option<&str>) -> Controls {
    match s {
        Some("none") => Controls::None,
        Some("full") => Controls::Full,
        _ => Controls::Compact,
    }
}

/// The widget's text: the `text` attribute, else the element's own text content.
fn host_text(host: &web_sys::HtmlElement) -> String {
    attr(host, "text").unwrap_or_else(|| host.text_content().unwrap_or_default().trim().to_string())
}

/// What JavaScript holds for each `<attn-lab>`.
#[wasm_bindgen]
pub struct WidgetHandle {
    w: W,
    /// The playground's state and actions, sharing `w`'s signals: every request of the
    /// widget goes through it.
    page: Page,
    host: web_sys::HtmlElement,
    base: String,
    owner: Owner,
    engine: Rc<std::cell::RefCell<Option<Rc<Engine>>>>,
    /// A saved state is being applied: attribute changes update the settings only (one run
    /// follows, with all of them).
    restoring: Rc<std::cell::Cell<bool>>,
}

impl WidgetHandle {
    fn model_url(&self) -> String {
        match attr(&self.host, "model-src") {
            Some(src) => resolve(&src, &super::engine::page_base()),
            None => format!("{}{DEFAULT_MODEL_URL}", self.base),
        }
    }

    /// The page's engine for this widget's model, created (and its model requested) on first
    /// use; the widget follows the model's state from then on.
    fn engine(&self) -> Option<Rc<Engine>> {
        if let Some(e) = self.engine.borrow().as_ref() {
            return Some(e.clone());
        }
        let w = self.w;
        let backend = crate::worker::protocol::BackendChoice::parse(&attr(&self.host, "backend").unwrap_or_default());
        match Engine::get(&self.model_url(), &self.base, backend) {
            Ok(e) => {
                let state = e.state.clone();
                self.owner.with(|| Effect::new(move |_| w.model.set(state.get())));
                *self.engine.borrow_mut() = Some(e.clone());
                Some(e)
            }
            Err(msg) => {
                w.error.set(Some(msg));
                w.phase.set(Phase::Error);
                None
            }
        }
    }

    fn clone_ref(&self) -> WidgetHandle {
        WidgetHandle { w: self.w, page: self.page, host: self.host.clone(), base: self.base.clone(), owner: self.owner.clone(), engine: self.engine.clone(), restoring: self.restoring.clone() }
    }

    /// Runs the widget's text live (loading the model first when needed), as the playground
    /// does: through the figure's [`Page`] on the page's engine, in the widget's slot.
    fn go_live(&self) {
        let (w, p) = (self.w, self.page);
        // Lost in the middle starts from its own button; the lab needs no model.
        if matches!(w.view.get_untracked(), View::Position | View::Lab) {
            return;
        }
        let Some(engine) = self.engine() else { return };
        w.error.set(None);
        w.notice.update(|n| if n.as_deref().is_some_and(|n| n.starts_with("This figure holds")) { *n = None });
        self.owner.with(|| p.attach(engine.clone()));
        if let ModelState::Failed(msg) = engine.state.get_untracked() {
            w.error.set(Some(msg));
            w.phase.set(Phase::Error);
            return;
        }
        let loaded = p.model.with_untracked(|m| m.is_some());
        if matches!(w.view.get_untracked(), View::Cost | View::Streaming) {
            // Ready once loaded; an effect in `mount_widget` makes that done.
            w.phase.set(if loaded { Phase::Done } else { Phase::LoadingModel });
            return;
        }
        if w.text.with_untracked(|t| t.trim().is_empty()) {
            w.error.set(Some("no text: give the element a text attribute or text content".into()));
            w.phase.set(Phase::Error);
            return;
        }
        if !loaded {
            w.phase.set(Phase::LoadingModel);
        }
        // The `query` attribute picks the row of every run (clamped to its text).
        p.asked_query.set_value(w.query_attr.get_untracked());
        if w.view.get_untracked() == View::Generate {
            p.start_generate(vec![]);
        } else {
            p.start_run();
        }
    }

    /// Layer or head changed: redraw from what the widget has, without a new run.
    fn redraw_head(&self) {
        let w = self.w;
        if !w.poster.get_untracked() {
            return self.page.request_head(None);
        }
        // A poster holds some heads' maps: those are drawn, the others need the model.
        let Some(run) = w.run.get_untracked() else { return };
        let (l, h) = (w.layer.get_untracked(), w.head.get_untracked());
        let (r, found) = run_from_report(&run.report, l, h, WIDGET_SIDE);
        if found {
            w.rows.set(run.report.attention.get(&crate::analysis::HeadId::key(l, h)).cloned());
            w.map.set(Some(r.map));
            w.notice.set(None);
        } else {
            w.notice.set(Some(format!("This figure holds {} only: press Run live for layer {l} head {h}.", held_list(&run))));
        }
    }

    fn zoom(&self, rows: (usize, usize), cols: (usize, usize)) {
        if !self.w.poster.get_untracked() {
            self.page.request_head(Some((rows, cols)));
        }
    }

    /// Loads the figure of `result-src` (no model download).
    fn load_poster(&self, url: String) {
        let w = self.w;
        leptos::task::spawn_local(async move {
            let parsed = fetch_text(&url).await.and_then(|t| parse_report(&t).map_err(|e| format!("{url}: {e}")));
            match parsed {
                Ok(report) => {
                    let (run, _) = run_from_report(&report, w.layer.get_untracked(), w.head.get_untracked(), WIDGET_SIDE);
                    w.layer.set(run.map.layer);
                    w.head.set(run.map.head);
                    w.rows.set(report.attention.get(&crate::analysis::HeadId::key(run.map.layer, run.map.head)).cloned());
                    w.map.set(Some(run.map.clone()).filter(|m| m.side_q > 0));
                    w.thumbs.set(thumbs_from_report(&report, 24));
                    let n = report.ids.len();
                    w.query.set(Some(w.query_attr.get_untracked().map(|q| q.min(n - 1)).unwrap_or(n - 1)));
                    w.text.set(report.text.clone());
                    w.run.set(Some(run));
                    w.poster.set(true);
                    w.phase.set(Phase::Done);
                }
                Err(e) => {
                    w.error.set(Some(e));
                    w.phase.set(Phase::Error);
                }
            }
        });
    }

    /// Loads the lost-in-the-middle result shown until the reader runs their own.
    fn load_outcome(&self, url: String) {
        let w = self.w;
        leptos::task::spawn_local(async move {
            match shipped_outcome(&url).await {
                Ok(o) => {
                    if w.outcome.get_untracked().is_none() {
                        w.outcome.set(Some(o));
                    }
                    w.poster.set(true);
                    w.phase.set(Phase::Done);
                }
                Err(e) => {
                    w.error.set(Some(e));
                    w.phase.set(Phase::Error);
                }
            }
        });
    }

    fn start_experiment(&self, e: crate::analysis::position::Experiment) {
        let Some(engine) = self.engine() else { return };
        self.owner.with(|| self.page.attach(engine));
        self.page.start_experiment(e);
    }
}

/// The writing state and actions of the widget's figure: the playground's, except that the
/// first Generate of an idle widget starts it (attaching it to the page's engine).
fn widget_writer(w: W, page: Page, hv: StoredValue<WidgetHandle, LocalStorage>) -> super::generate::Writer {
    super::generate::Writer {
        start: Callback::new(move |_| {
            if w.phase.get_untracked() == Phase::Idle {
                hv.with_value(|h| h.go_live())
            } else {
                page.start_generate(vec![])
            }
        }),
        ..page.writer()
    }
}

fn held_list(run: &RunResult) -> String {
    let keys: Vec<String> = run.report.attention.keys().take(4).map(|k| format!("head {k}")).collect();
    if keys.is_empty() { "no head maps".into() } else { keys.join(", ") }
}

#[wasm_bindgen]
impl WidgetHandle {
    /// The reader scrolled near it (`loading="lazy"`), or it is eager: start the figure.
    pub fn start(&self) {
        let w = self.w;
        w.started.set_value(true);
        // A tour on its way sets the figure first (its first step says what to run).
        if w.phase.get_untracked() == Phase::Idle && !w.tour_loading.get_value() {
            self.go_live();
        }
    }

    /// An attribute changed: update the widget (layer/head re-draw without a new run).
    pub fn set(&self, name: &str) {
        let (w, host) = (self.w, &self.host);
        let quiet = self.restoring.get();
        let s = settings(host);
        if let Some(why) = refused(&s, name) {
            w.notice.set(Some(format!("{why}; the default is used")));
        }
        let num = |n: &str| s.number::<usize>(n);
        let limits = match w.model.get_untracked() {
            ModelState::Ready { model, .. } => Some((model.n_layer, model.n_head)),
            _ => w.run.get_untracked().map(|r| (r.report.n_layers, r.report.n_heads)),
        };
        let clamp = |v: usize, i: usize| match limits {
            Some(l) => v.min(if i == 0 { l.0 } else { l.1 }.saturating_sub(1)),
            None => v,
        };
        match name {
            "layer" | "head" => {
                w.layer.set(clamp(num("layer").unwrap_or(0), 0));
                w.head.set(clamp(num("head").unwrap_or(0), 1));
                if !quiet {
                    self.redraw_head();
                }
            }
            "query" => {
                w.query_attr.set(num("query"));
                self.page.asked_query.set_value(num("query"));
                if let Some(n) = w.run.get_untracked().map(|r| r.report.ids.len()) {
                    w.query.set(Some(num("query").unwrap_or(n - 1).min(n - 1)));
                }
            }
            "view" => {
                let Ok(v) = widget_view(&s) else { return };
                w.view.set(v);
                self.set_panels(&s);
                if quiet {
                    w.view.set(v);
                    return;
                }
                // What the new view needs of the run (thumbnails, the lens, scores) is asked for.
                self.page.choose_view(v);
                if v == View::Position && w.outcome.get_untracked().is_none() {
                    self.load_outcome(format!("{}{SHIPPED_POSITION}", self.base));
                }
                if v == View::Lab {
                    self.show_lab();
                }
            }
            "controls" => w.controls.set(parse_controls(s.get("controls"))),
            "gen" | "temperature" | "top-k" | "top_k" | "top-p" | "top_p" | "seed" | "chat" => w.gen.set(crate::generate::GenSettings::from_settings(&s).0),
            "theme" => w.theme.set(s.get("theme").unwrap_or("auto").to_string()),
            "scale" | "palette" => w.look.set_style(&s),
            "sink" | "whatif" => {
                w.look.set_style(&s);
                if w.run.get_untracked().is_some() && !w.poster.get_untracked() && !quiet {
                    self.redraw_head();
                }
            }
            "text" => {
                w.text.set(host_text(host));
                if w.phase.get_untracked() != Phase::Idle && !quiet {
                    self.go_live();
                }
            }
            "ablate" => self.page.set_knock_out(s.get("ablate").unwrap_or_default()),
            "through" | "through-layers" | "through_layers" if quiet => self.page.through.set(super::through_of(&s)),
            "through" | "through-layers" | "through_layers" => self.page.set_through(super::through_of(&s)),
            "first" | "second" | "word" => {
                self.page.pair.set(super::vectors::pair_of(&s));
                self.page.compare_texts.set(super::compare::texts_of(&s));
                if !quiet && w.view.get_untracked() == View::Compare {
                    self.page.request_two_texts();
                }
                if !quiet && w.view.get_untracked() == View::Vectors {
                    self.page.vectors.set(None);
                    self.page.request_vectors();
                }
            }
            "present" => w.present.set(host.has_attribute("present")),
            "panels" => self.set_panels(&s),
            "tour" => {
                if let Some(src) = attr(host, "tour") {
                    self.load_tour(resolve(&src, &super::engine::page_base()));
                }
            }
            "state" if !quiet => {
                let _ = self.restore(&attr(host, "state").unwrap_or_default());
            }
            "result-src" => {
                if let Some(src) = attr(host, "result-src") {
                    self.load_poster(resolve(&src, &super::engine::page_base()));
                }
            }
            _ => {}
        }
    }

    /// What the widget shows, as settings (JSON): view, text, layer, head, query (null: the
    /// last token), scale, palette, sink, whatif, ablate, controls, theme, and the writing
    /// settings of `view="generate"`. [`Self::restore`] on any widget shows the same.
    pub fn state(&self) -> String {
        let (w, p) = (self.w, self.page);
        let last = w.run.with_untracked(|r| r.as_ref().map(|r| r.report.ids.len().saturating_sub(1)));
        let query = match last {
            Some(last) => w.query.get_untracked().filter(|q| *q != last),
            None => w.query_attr.get_untracked(),
        };
        let style = w.look.style_untracked();
        let n_head = w.run.with_untracked(|r| r.as_ref().map(|r| r.report.n_heads)).unwrap_or(usize::MAX);
        let mut s = serde_json::json!({
            "view": w.view.get_untracked().as_str(),
            "text": w.text.get_untracked(),
            "layer": w.layer.get_untracked(),
            "head": w.head.get_untracked(),
            "query": query,
            "scale": style.colour.as_str(),
            "palette": style.palette.as_str(),
            "sink": if style.hide_sink { "hide" } else { "show" },
            "whatif": style.what_if.param().unwrap_or("none"),
            "ablate": crate::analysis::heads::heads_spec(&p.knocked.get_untracked(), n_head),
            "controls": match w.controls.get_untracked() { Controls::None => "none", Controls::Compact => "compact", Controls::Full => "full" },
            "theme": w.theme.get_untracked(),
            "panels": w.panels.get_untracked().map(|p| p.join(",")),
            "through": p.through.get_untracked().map(|t| t.0.name()).unwrap_or("none"),
            "through-layers": p.through.get_untracked().map(|t| t.1),
        });
        if w.view.get_untracked() == View::Generate {
            for (k, v) in w.gen.get_untracked().params() {
                s[k.replace('_', "-")] = serde_json::Value::String(v);
            }
        }
        s.to_string()
    }

    /// Shows a saved state ([`Self::state`], from this or another widget): each setting is
    /// checked ([`crate::settings::parse_state`]); what cannot be used is dropped and said in
    /// the widget; a live widget then runs once with all of it. A state that is not one JSON
    /// object of settings is refused whole (an error, and nothing changes).
    pub fn restore(&self, json: &str) -> Result<(), String> {
        let r = match crate::settings::parse_state(json) {
            Ok(r) => r,
            Err(e) => {
                self.w.notice.set(Some(e.clone()));
                return Err(e);
            }
        };
        self.apply(&r);
        Ok(())
    }
}

impl WidgetHandle {
    /// Shows checked settings (a restored state, a tour's step): attributes set quietly, then,
    /// when the widget is live, one run with all of them.
    fn apply(&self, r: &crate::settings::Restore) {
        let w = self.w;
        self.restoring.set(true);
        set_attributes(&self.host, &r.set);
        self.restoring.set(false);
        w.notice.set((!r.dropped.is_empty()).then(|| format!("Not restored: {}.", r.dropped.join("; "))));
        match w.view.get_untracked() {
            View::Position if w.outcome.get_untracked().is_none() => self.load_outcome(format!("{}{SHIPPED_POSITION}", self.base)),
            View::Lab => self.show_lab(),
            _ if w.phase.get_untracked() != Phase::Idle => self.go_live(),
            _ => {}
        }
    }

    /// The lab needs no model: drawn at once (what an earlier view failed at is no longer shown).
    fn show_lab(&self) {
        let w = self.w;
        w.error.set(None);
        if w.phase.get_untracked() != Phase::Running {
            w.phase.set(Phase::Done);
        }
    }

    /// Keeps the parts of the view that `panels` names; names the view does not have are said.
    fn set_panels(&self, s: &crate::settings::Restore) {
        let w = self.w;
        let Some(list) = s.get("panels") else { return w.panels.set(None) };
        let view = w.view.get_untracked();
        let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect();
        let parts = panel_names(view);
        let unknown: Vec<&String> = names.iter().filter(|n| !parts.contains(&n.as_str())).collect();
        if !unknown.is_empty() {
            let shown: Vec<String> = unknown.iter().take(4).map(|n| format!("‘{}’", n.chars().take(20).collect::<String>())).collect();
            let said = format!("panels: {} not a part of the {} view (its parts: {}).", shown.join(", "), view.as_str(), parts.join(", "));
            w.notice.update(|n| *n = Some(n.take().map(|old| format!("{old} {said}")).unwrap_or(said)));
        }
        w.panels.set(Some(names));
    }

    /// Shows step `k` of the tour.
    fn show_step(&self, k: usize) {
        let Some(settings) = self.w.tour.with_untracked(|t| t.as_ref().and_then(|t| t.steps.get(k)).map(|s| s.settings.clone())) else { return };
        self.w.step.set(k);
        self.apply(&settings);
    }

    /// Fetches the tour at `url` (at most [`crate::tour::TOUR_MAX_BYTES`]) and shows its first
    /// step; a tour that cannot be used leaves the figure as it is and says why.
    fn load_tour(&self, url: String) {
        let me = self.clone_ref();
        self.w.tour_loading.set_value(true);
        leptos::task::spawn_local(async move {
            let w = me.w;
            let parsed = fetch_text_capped(&url, crate::tour::TOUR_MAX_BYTES).await.and_then(|t| crate::tour::parse_tour(&t));
            match parsed {
                Ok(t) => {
                    let dropped = t.dropped.clone();
                    w.tour.set(Some(t));
                    me.show_step(0);
                    if !dropped.is_empty() {
                        w.notice.set(Some(format!("The tour's settings not used: {}.", dropped.join("; "))));
                    }
                }
                Err(e) => w.notice.set(Some(format!("The tour could not be used: {e}."))),
            }
            w.tour_loading.set_value(false);
            if w.started.get_value() {
                me.start();
            }
        });
    }
}

#[wasm_bindgen]
impl WidgetHandle {

    /// The widget's result in the `attnlab inspect --json` schema (`attention` holding its
    /// head), or null before it has one.
    #[wasm_bindgen(js_name = exportJson)]
    pub fn export_json(&self) -> Option<String> {
        let w = self.w;
        let run = w.run.get_untracked()?;
        let json = super::generate::with_generation(export_json(&run, w.rows.get_untracked().as_ref(), w.layer.get_untracked(), w.head.get_untracked()), w.generation.get_untracked().as_ref());
        Some(super::lens::with_lens(json, w.lens.get_untracked().as_ref()))
    }
}

/// Mounts a widget for `host` (the `<attn-lab>` element) into `root` (its shadow root).
/// `base` is the absolute URL of the site's directory (where embed.js lives).
#[wasm_bindgen(js_name = mountWidget)]
pub fn mount_widget(host: web_sys::HtmlElement, root: web_sys::ShadowRoot, base: String) -> Result<WidgetHandle, JsValue> {
    let doc = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let style = doc.create_element("style")?;
    style.set_text_content(Some(WIDGET_CSS));
    root.append_child(&style)?;
    let container: web_sys::HtmlElement = doc.create_element("div")?.unchecked_into();
    root.append_child(&container)?;

    let owner = Owner::new();
    let slot = NEXT_SLOT.with(|s| {
        let v = s.get();
        s.set(v + 1);
        v
    });
    // A saved state (`state` attribute) becomes the attributes it names, before they are read.
    let restored = attr(&host, "state").map(|json| crate::settings::parse_state(&json)).map(|r| match r {
        Ok(r) => {
            set_attributes(&host, &r.set);
            r.dropped.iter().map(|d| format!("Not restored: {d}.")).collect::<Vec<_>>()
        }
        Err(e) => vec![e],
    });
    let s = settings(&host);
    let num = |n: &str| s.number::<usize>(n);
    let view = widget_view(&s);
    let gen = crate::generate::GenSettings::from_settings(&s).0;
    let w = owner.with(|| W {
        text: RwSignal::new(host_text(&host)),
        layer: RwSignal::new(num("layer").unwrap_or(0)),
        head: RwSignal::new(num("head").unwrap_or(0)),
        query: RwSignal::new(None),
        query_attr: RwSignal::new(num("query")),
        view: RwSignal::new(view.clone().unwrap_or(View::Head)),
        controls: RwSignal::new(parse_controls(s.get("controls"))),
        theme: RwSignal::new(s.get("theme").unwrap_or("auto").to_string()),
        look: super::heatmap::Look::of(&s),
        phase: RwSignal::new(Phase::Idle),
        poster: RwSignal::new(false),
        run: RwSignal::new(None),
        map: RwSignal::new(None),
        rows: RwSignal::new(None),
        thumbs: RwSignal::new(None),
        lens: RwSignal::new(None),
        lens_running: RwSignal::new(false),
        outcome: RwSignal::new(None),
        exp_progress: RwSignal::new(None),
        error: RwSignal::new(None),
        notice: RwSignal::new(None),
        model: RwSignal::new(ModelState::Loading { phase: "download".into(), done: 0.0, total: None }),
        gen: RwSignal::new(gen),
        generation: RwSignal::new(None),
        writer: StoredValue::new(None),
        tour: RwSignal::new(None),
        step: RwSignal::new(0),
        present: RwSignal::new(host.has_attribute("present")),
        panels: RwSignal::new(None),
        started: StoredValue::new(false),
        tour_loading: StoredValue::new(false),
    });
    // What the attributes hold that cannot be used (an unknown view is the widget's error).
    let refused = s.dropped.iter().filter(|d| !d.starts_with("view=")).map(|d| format!("{d}; the default is used."));
    let notices: Vec<String> = refused.chain(restored.unwrap_or_default()).collect();
    if !notices.is_empty() {
        w.notice.set(Some(notices.join(" ")));
    }
    let page = owner.with(|| page_state(w, &host, slot));
    page.through.set(super::through_of(&s));
    page.pair.set(super::vectors::pair_of(&s));
    page.compare_texts.set(super::compare::texts_of(&s));
    let handle = WidgetHandle { w, page, host: host.clone(), base, owner: owner.clone(), engine: Rc::default(), restoring: Rc::default() };
    handle.set_panels(&s);

    // Mounting also starts Leptos' task executor, which effects need.
    let hv = owner.with(|| StoredValue::new_local(handle.clone_ref()));
    w.writer.set_value(Some(widget_writer(w, page, hv)));
    let unmount = owner.with(|| leptos::mount::mount_to(container, move || view! { <Widget w=w page=page hv=hv/> }));
    std::mem::forget(unmount);

    // The element's contract: state, view, backend and source on its dataset; an event when
    // one of them changes (not on every download progress step).
    let h = host.clone();
    owner.with(|| {
        Effect::new(move |last: Option<(Phase, View, bool, Option<String>)>| {
            let phase = w.phase.get();
            let (view, poster) = (w.view.get(), w.poster.get());
            let backend = match w.model.get() {
                ModelState::Ready { backend, .. } if !poster => Some(backend),
                _ => None,
            };
            let now = (phase, view, poster, backend.clone());
            if last.as_ref() == Some(&now) {
                return now;
            }
            let ds = h.dataset();
            let _ = ds.set("state", phase.as_str());
            let _ = ds.set("view", view.as_str());
            let _ = ds.set("source", if poster { "static" } else { "live" });
            if let Some(b) = &backend {
                let _ = ds.set("backend", b);
            }
            let init = web_sys::CustomEventInit::new();
            init.set_bubbles(true);
            init.set_composed(true);
            let detail = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&detail, &"state".into(), &phase.as_str().into());
            let _ = js_sys::Reflect::set(&detail, &"view".into(), &view.as_str().into());
            init.set_detail(&detail);
            if let Ok(ev) = web_sys::CustomEvent::new_with_event_init_dict("attnlab-statechange", &init) {
                let _ = h.dispatch_event(&ev);
            }
            now
        });
    });

    // `attnlab-select`: the reader chose another token or head (not a new run's defaults),
    // with the chosen token's row of attention in that head.
    let h = host.clone();
    owner.with(|| {
        Effect::new(move |last: Option<Option<Selection>>| {
            let q = w.query.get()?;
            let (layer, head) = w.map.with(|m| m.as_ref().map(|m| (m.layer, m.head)))?;
            let ids = w.run.with_untracked(|r| r.as_ref().map(|r| r.report.ids.clone()))?;
            let now = (ids, layer, head, q);
            let Some(Some(prev)) = last else { return Some(now) };
            if prev == now || prev.0 != now.0 {
                return Some(now);
            }
            let detail = js_sys::Object::new();
            let set = |k: &str, v: JsValue| js_sys::Reflect::set(&detail, &k.into(), &v).is_ok();
            set("layer", layer.into());
            set("head", head.into());
            set("query", q.into());
            set("token", w.run.with_untracked(|r| r.as_ref().and_then(|r| r.report.tokens.get(q).cloned())).unwrap_or_default().into());
            let row = w.rows.with_untracked(|r| r.as_ref().and_then(|r| r.get(q).cloned()));
            set("row", row.map(|r| js_sys::Float32Array::from(r.as_slice()).into()).unwrap_or(JsValue::NULL));
            let init = web_sys::CustomEventInit::new();
            init.set_bubbles(true);
            init.set_composed(true);
            init.set_detail(&detail);
            if let Ok(ev) = web_sys::CustomEvent::new_with_event_init_dict("attnlab-select", &init) {
                let _ = h.dispatch_event(&ev);
            }
            Some(now)
        });
    });

    owner.with(|| {
        // Inside one head: a token picked in the strip explains its row.
        Effect::new(move |_| {
            w.query.track();
            page.request_explain();
        });
        // The cost of attention is drawn once the model is loaded (nothing to run).
        Effect::new(move |_| {
            if matches!(w.view.get(), View::Cost | View::Streaming) && w.phase.get() == Phase::Ready {
                w.phase.set(Phase::Done);
            }
        });
    });

    // An unknown view draws nothing (a head map in its place would mislead): it says so.
    if let Err(e) = view {
        w.error.set(Some(e));
        w.phase.set(Phase::Error);
        return Ok(handle);
    }
    // First figure: a poster or the shipped U-curve at once; live runs when started.
    if let Some(src) = attr(&host, "result-src").filter(|_| w.view.get_untracked() != View::Position) {
        handle.load_poster(resolve(&src, &super::engine::page_base()));
    } else if w.view.get_untracked() == View::Position {
        let url = attr(&host, "result-src").map(|s| resolve(&s, &super::engine::page_base())).unwrap_or_else(|| format!("{}{SHIPPED_POSITION}", handle.base));
        handle.load_outcome(url);
    } else if w.view.get_untracked() == View::Lab {
        // Computed on the page's thread from the toy vocabulary: drawn at once, nothing to load.
        w.phase.set(Phase::Done);
    }
    // A tour sets the figure to its first step (live figures still start from embed.js).
    if let Some(src) = attr(&host, "tour") {
        handle.load_tour(resolve(&src, &super::engine::page_base()));
    }
    // Live figures start from embed.js: lazy ones when scrolled near, eager ones a moment after
    // mounting (see there).
    Ok(handle)
}

/// The parts of each view that `panels` can keep, and where they are in the widget.
const PANELS: &[(View, &str, &str)] = &[
    (View::Head, "map", ".aw-body"),
    (View::Head, "tokens", ".tokens"),
    (View::Inside, "map", ".aw-body"),
    (View::Inside, "tokens", ".tokens"),
    (View::Inside, "controls", ".look-controls"),
    (View::Inside, "steps", ".inside ol.steps"),
    (View::Inside, "table", ".steps-table, .whatif-summary"),
    (View::Inside, "through", ".through"),
    (View::Inside, "effects", ".effects"),
    (View::Patterns, "scores", ".pattern-controls"),
    (View::Patterns, "grid", ".pattern-body"),
    (View::Patterns, "induction", ".induction-seq, .induction-maps"),
    (View::Patterns, "knockout", ".knockout"),
    (View::Patterns, "similarity", ".similarity"),
    (View::KnockOut, "controls", ".knockout-controls"),
    (View::KnockOut, "next", ".next-compare"),
    (View::KnockOut, "strip", ".delta-strip"),
    (View::KnockOut, "maps", ".changed, .compare-pick, .compare-maps"),
    (View::Generate, "controls", ".aw-controls"),
    (View::Generate, "map", ".aw-body"),
    (View::Generate, "tokens", ".gen-tokens, .gen-alternatives, .gen-step"),
    (View::Generate, "times", ".gen-speed, .gen-times"),
];
/// Parts of every view.
const COMMON_PANELS: [(&str, &str); 3] = [("title", ".aw-bar"), ("caption", ".aw-caption"), ("exports", ".aw-foot")];

/// The names `panels` can use in `view`.
pub(super) fn panel_names(view: View) -> Vec<&'static str> {
    PANELS.iter().filter(|p| p.0 == view).map(|p| p.1).chain(COMMON_PANELS.iter().map(|p| p.0)).collect()
}

/// The style that hides the parts of `view` that `panels` does not keep.
fn panels_css(view: View, panels: Option<&[String]>) -> String {
    let Some(keep) = panels else { return String::new() };
    let parts = PANELS.iter().filter(|p| p.0 == view).map(|p| (p.1, p.2)).chain(COMMON_PANELS);
    parts.filter(|(name, _)| !keep.iter().any(|k| k == name)).map(|(_, sel)| format!("{sel}{{display:none!important}}")).collect()
}

/// What a reader has chosen: (the run's token ids, layer, head, query).
type Selection = (Vec<u32>, usize, usize, usize);

/// The playground's state for widget `w` (its slot, its signals): what the views drawn from
/// it read from context. `ablate` (heads knocked out, `L.H,L.*`) is checked once the model
/// has loaded, as the playground's `?ablate=`.
fn page_state(w: W, host: &web_sys::HtmlElement, slot: u32) -> Page {
    let ablate = attr(host, "ablate").filter(|a| !a.trim().is_empty());
    let mut p = Page::new(String::new(), 0, 0, View::Head, false, Default::default(), ablate, Default::default()).in_slot(slot, WIDGET_SIDE);
    p.text = w.text;
    p.layer = w.layer;
    p.head = w.head;
    p.query = w.query;
    p.view = w.view;
    p.look = w.look;
    p.phase = w.phase;
    p.poster = w.poster;
    p.exp_progress = w.exp_progress;
    p.exp_outcome = w.outcome;
    p.run = w.run;
    p.map = w.map;
    p.rows = w.rows;
    p.thumbs = w.thumbs;
    p.lens = w.lens;
    p.lens_running = w.lens_running;
    p.error = w.error;
    p.gen = w.gen;
    p.generation = w.generation;
    p.asked_query.set_value(w.query_attr.get_untracked());
    p
}

/// The widget's view: header, optional controls, the chosen figure, caption and exports.
#[component]
fn Widget(w: W, page: Page, hv: StoredValue<WidgetHandle, LocalStorage>) -> impl IntoView {
    provide_context(page);
    provide_context(w.look);
    provide_context(w.writer.get_value().expect("set at mount"));
    let canvas_ref: NodeRef<html::Canvas> = NodeRef::new();
    let exp_canvas: NodeRef<html::Canvas> = NodeRef::new();
    let tokens = Signal::derive(move || w.run.with(|r| r.as_ref().map(|r| r.report.tokens.clone()).unwrap_or_default()));
    let query_row = Signal::derive(move || {
        let q = w.query.get()?;
        w.rows.with(|r| r.as_ref().and_then(|r| r.get(q).cloned()))
    });
    let run_live = move || hv.with_value(|h| h.go_live());
    let open_head = Callback::new(move |(l, hd): (usize, usize)| {
        w.layer.set(l);
        w.head.set(hd);
        w.view.set(View::Head);
        hv.with_value(|h| h.redraw_head());
    });
    let on_zoom = Callback::new(move |(r, c): ((usize, usize), (usize, usize))| hv.with_value(|h| h.zoom(r, c)));
    let set_lh = move |l: Option<usize>, hd: Option<usize>| {
        let (nl, nh) = w.run.with_untracked(|r| r.as_ref().map(|r| (r.report.n_layers, r.report.n_heads))).unwrap_or((usize::MAX, usize::MAX));
        if let Some(l) = l {
            w.layer.set(l.min(nl.saturating_sub(1)));
        }
        if let Some(hd) = hd {
            w.head.set(hd.min(nh.saturating_sub(1)));
        }
        hv.with_value(|h| h.redraw_head());
    };
    let base = hv.with_value(|h| h.base.clone());
    let playground_href = {
        let base = base.clone();
        move || {
            let p = web_sys::UrlSearchParams::new().ok();
            let q = p.map(|p| {
                p.append("text", &w.text.get());
                p.append("layer", &w.layer.get().to_string());
                p.append("head", &w.head.get().to_string());
                p.append("view", w.view.get().as_str());
                if let Some(q) = w.query_attr.get() {
                    p.append("q", &q.to_string());
                }
                let style = w.look.style();
                if style.colour != super::heatmap::ColourScale::Sqrt {
                    p.append("scale", style.colour.as_str());
                }
                if style.palette != super::heatmap::Palette::Blues {
                    p.append("palette", style.palette.as_str());
                }
                if style.hide_sink {
                    p.append("sink", "hide");
                }
                if let Some(x) = style.what_if.param() {
                    p.append("whatif", x);
                }
                let knocked = page.knocked.get();
                if !knocked.is_empty() {
                    let n_head = w.run.with(|r| r.as_ref().map(|r| r.report.n_heads)).unwrap_or(usize::MAX);
                    p.append("ablate", &crate::analysis::heads::heads_spec(&knocked, n_head));
                }
                String::from(p.to_string())
            });
            format!("{base}index.html?{}", q.unwrap_or_default())
        }
    };
    let theme_class = move || format!("aw theme-{}{}", w.theme.get(), if w.present.get() { " present" } else { "" });
    let on_step = Callback::new(move |k: usize| hv.with_value(|h| h.show_step(k)));
    // The arrow keys step through a tour (not while typing in a box).
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let typing = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).is_some_and(|e| matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"));
        let Some(n) = w.tour.with_untracked(|t| t.as_ref().map(|t| t.steps.len())) else { return };
        if typing || ev.alt_key() || ev.ctrl_key() || ev.meta_key() {
            return;
        }
        let k = w.step.get_untracked();
        let next = match ev.key().as_str() {
            "ArrowRight" | "PageDown" if k + 1 < n => k + 1,
            "ArrowLeft" | "PageUp" if k > 0 => k - 1,
            _ => return,
        };
        ev.prevent_default();
        on_step.run(next);
    };
    let caption = move || {
        let model_name = match w.model.get() {
            ModelState::Ready { model, .. } if !w.poster.get() => model.display_name,
            _ => w.run.with(|r| r.as_ref().map(|r| crate::model::display_name(&r.report.model, "", "", "", 0))).unwrap_or_else(|| "SmolLM2-135M-Instruct".into()),
        };
        match w.view.get() {
            View::Head => format!("Layer {} · head {} of {model_name}: row = the token reading, column = the token it looks at; each row sums to 1.", w.layer.get(), w.head.get()),
            View::Model => format!("Every head of {model_name}, a row per layer; boxes group the query heads sharing one key/value head."),
            View::Sinks => "Share of each head's attention that lands on the first token (the attention sink), against an even spread.".to_string(),
            View::Tokens => "The text as the model reads it: one box per token; shading shows where the chosen token looks.".to_string(),
            View::Position => "Lost in the middle: how well the model recalls an answer depending on where it sits in the prompt.".to_string(),
            View::Lab => "Attention from scratch: five words of a toy vocabulary, each step of the formula softmax(QKᵀ ÷ √d)·V as a small matrix (hover a cell for its value). Change a word, re-roll the weights or switch the mask and everything updates.".to_string(),
            View::Patterns => format!("Every head of {model_name} scored by what it looks at: the first token, the previous token, itself, or spread out (entropy). Hover a cell for the head's map; the induction diagnostic runs a repeated random sequence."),
            View::Streaming => format!("{model_name} reads a long text with four caches: every earlier token, only the last W, the first S kept beside the last W (StreamingLLM), and every token but the first. Lower perplexity is better."),
            View::Cost => "What attention costs as the text grows: measured on this machine (time and memory against n, log-log), the model's own arithmetic split, and the memory the KV cache needs.".to_string(),
            View::Inside => format!("Layer {} · head {} of {model_name}, one query's row step by step: q·k, ÷√d, the mask, softmax, and what each key's value adds. Click a token to explain its row; the what-ifs show the row without a step.", w.layer.get(), w.head.get()),
            View::Similarity => format!("Every pair of heads of {model_name} compared on this text (Jensen–Shannon distance between their rows, averaged): dark squares on the diagonal are heads that look at the same tokens."),
            View::KnockOut => format!("Heads of {model_name} knocked out (their output set to zero) and the model run again: the next-token prediction before and after, and which tokens got harder to predict."),
            View::Lens => format!("What {model_name} would predict if it stopped after each layer: every layer's output read through its final norm and vocabulary (the “logit lens”). Rows are layers, columns the tokens; each cell is the likeliest next token, darker when surer."),
            View::Compare => format!("Two texts through {model_name}: layer {} · head {} drawn on both, and every head ranked by how much its pattern changes between them.", w.layer.get(), w.head.get()),
            View::Vectors => format!("One word in two texts, followed through {model_name}: how alike its two vectors are after each layer (cosine similarity), and what each would make the model predict there."),
            View::Qk => format!("Layer {} · head {} of {model_name}: every token's query (▲) and key (●) on the two axes where they differ most; lines join each query to the keys it reads most.", w.layer.get(), w.head.get()),
            View::Generate => format!("{model_name} continues the text one token at a time: each step computes one new query, key and value per head and reuses the keys and values it cached for the earlier tokens. The map grows a row per token."),
        }
    };
    view! {
        <div class=theme_class data-view=move || w.view.get().as_str() on:keydown=on_key>
            <style>{move || panels_css(w.view.get(), w.panels.get().as_deref())}</style>
            <div class="aw-bar">
                <strong class="aw-title">{move || match w.view.get() { View::Head => format!("Layer {} · head {}", w.layer.get(), w.head.get()), View::Model => "All heads".into(), View::Sinks => "Attention sink".into(), View::Lab => "From scratch".into(), View::Patterns => "Head patterns".into(), View::Cost => "Cost of attention".into(), View::Tokens => "Tokens".into(), View::Position => "Lost in the middle".into(), View::Generate => "The model writes".into(), View::Lens => "Layer by layer".into(), v @ (View::Inside | View::Similarity | View::KnockOut | View::Streaming | View::Vectors | View::Qk | View::Compare) => super::tab_name(v).into() }}</strong>
                {move || match (w.phase.get(), w.poster.get()) {
                    (Phase::Idle, _) => view! { <button class="aw-run" on:click=move |_| run_live()>"Run live"</button><span class="aw-muted">" downloads the model once (94 MB)"</span> }.into_any(),
                    (_, true) if w.view.get() != View::Position => view! { <span class="aw-static">"static"</span><button class="aw-run" on:click=move |_| run_live()>"Run live"</button> }.into_any(),
                    _ => match w.model.get() {
                        ModelState::Ready { backend, adapter, .. } if !w.poster.get() => view! { <span class="aw-badge" title=format!("Details: {adapter}") data-adapter=adapter>{if backend == "webgpu" { "on your graphics card" } else { "on your CPU" }}</span> }.into_any(),
                        _ => ().into_any(),
                    },
                }}
            </div>
            <super::tour_view::TourBar tour=w.tour step=w.step on_step=on_step/>
            {move || (w.view.get() == View::Generate).then(|| view! {
                {(w.controls.get() != Controls::None).then(|| view! { <div class="aw-controls"><super::generate::GenerateControls/></div> })}
                <super::generate::GenerationPanel/>
            })}
            {move || (w.controls.get() != Controls::None && !matches!(w.view.get(), View::Position | View::Generate | View::Lab | View::Cost | View::Streaming | View::Vectors | View::Compare)).then(|| {
                view! {
                    <div class="aw-controls">
                        {(w.controls.get() == Controls::Full).then(|| view! {
                            <textarea aria-label="text" rows="2" prop:value=move || w.text.get() on:input=move |ev| w.text.set(event_target_value(&ev))
                                on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) { run_live() }></textarea>
                        })}
                        // Views of every layer: no layer or head to pick.
                        {(!matches!(w.view.get(), View::Lens | View::Patterns | View::Similarity | View::KnockOut)).then(|| view! {
                        <label>"Layer "<input type="number" name="layer" min="0" prop:value=move || w.layer.get() on:change=move |ev| { let n = w.run.with_untracked(|r| r.as_ref().map(|r| r.report.n_layers)); set_lh(Some(super::corrected(&ev, w.layer.get_untracked(), n)), None) }/></label>
                        <label>"Head "<input type="number" name="head" min="0" prop:value=move || w.head.get() on:change=move |ev| { let n = w.run.with_untracked(|r| r.as_ref().map(|r| r.report.n_heads)); set_lh(None, Some(super::corrected(&ev, w.head.get_untracked(), n))) }/></label>
                        })}
                        <button class="aw-run primary" on:click=move |_| run_live() disabled=move || matches!(w.phase.get(), Phase::Running | Phase::LoadingModel)>
                            {move || if w.phase.get() == Phase::Running { "Running…" } else { "Run" }}
                        </button>
                    </div>
                }
            })}
            {move || match (w.phase.get(), w.model.get()) {
                (Phase::LoadingModel, ModelState::Loading { phase, done, total }) => {
                    let pct = total.map(|t| done / t.max(1.0) * 100.0).unwrap_or(0.0);
                    let label = match phase.as_str() { "cache" => "Loading the model from the browser cache", "parse" => "Reading the model", "upload" => "Uploading weights to the GPU", _ => "Downloading the model" };
                    view! { <div class="aw-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{pct:.0}")><div class="aw-barfill" style=format!("width:{pct:.1}%")></div><span>{format!("{label}: {:.1} MB", done / 1e6)}</span></div> }.into_any()
                }
                (Phase::Running, _) if w.view.get() != View::Position => view! { <div class="aw-progress aw-indeterminate" role="progressbar" aria-label="running the model"><span>"Running the model…"</span></div> }.into_any(),
                _ => ().into_any(),
            }}
            {move || w.error.get().map(|e| view! { <p class="aw-error" role="alert">{e}</p> })}
            {move || w.notice.get().map(|n| view! { <p class="aw-notice">{n}</p> })}
            <div class="aw-body" class:aw-hidden=move || !matches!(w.view.get(), View::Head | View::Generate | View::Inside)>
                {move || w.map.get().is_none().then(|| view! { <p class="aw-muted aw-placeholder">{move || if w.phase.get() == Phase::Idle { format!("“{}”", w.text.get()) } else { String::new() }}</p> })}
                <div class:aw-hidden=move || w.map.get().is_none()>
                    <Heatmap map=w.map tokens=tokens query=w.query on_zoom=on_zoom canvas_ref=canvas_ref/>
                </div>
            </div>
            {move || matches!(w.view.get(), View::Tokens | View::Head | View::Generate | View::Inside).then(|| view! { <TokenStrip tokens=tokens query=w.query row=query_row/> })}
            // The views drawn from the playground's state, as the playground draws them.
            {move || match w.view.get() {
                View::Inside => view! { <super::inside::InsideHead/> }.into_any(),
                View::Patterns => view! { <div class="patterns-widget"><super::patterns::PatternsView/></div> }.into_any(),
                View::Similarity => view! { <super::similarity::SimilarityView/> }.into_any(),
                View::KnockOut => view! { <super::knockout::KnockOutPanel/> }.into_any(),
                View::Cost => view! { <super::cost::CostView/> }.into_any(),
                View::Streaming => view! { <super::streaming::SinksMatter base=base.clone()/> }.into_any(),
                View::Vectors => view! { <super::vectors::WordVectorsPanel/> }.into_any(),
                View::Qk => view! { <super::vectors::QkPanel/> }.into_any(),
                View::Compare => view! { <super::compare::ComparePanel/> }.into_any(),
                _ => ().into_any(),
            }}
            {move || { let n = page.notice.get(); (!n.is_empty()).then(|| view! { <p class="aw-notice">{n.join(" ")}</p> }) }}
            {move || (w.view.get() == View::Model).then(|| match (w.run.get(), w.thumbs.get()) {
                (Some(r), Some(_)) => view! { <ModelView thumbs=w.thumbs n_head=r.report.n_heads n_kv_head=r.report.n_kv_heads current=Signal::derive(move || (w.layer.get(), w.head.get())) on_open=open_head/> }.into_any(),
                (Some(_), None) if w.poster.get() => view! { <p class="aw-notice">"This figure holds only some heads: press Run live to see every head."</p> }.into_any(),
                _ => ().into_any(),
            })}
            {move || (w.view.get() == View::Sinks && w.run.get().is_some()).then(|| view! {
                <SinkPanel
                    sink=Signal::derive(move || w.run.with(|r| r.as_ref().map(|r| r.report.sink_mass_key0.clone()).unwrap_or_default()))
                    per_layer=Signal::derive(move || w.run.with(|r| r.as_ref().map(|r| r.sink_per_layer.clone()).unwrap_or_default()))
                    baseline=Signal::derive(move || w.run.with(|r| r.as_ref().map(|r| r.sink_uniform_baseline).unwrap_or(0.0)))
                    on_open=open_head/>
            })}
            {move || (w.view.get() == View::Lab).then(|| view! { <super::minilab::MiniLab/> })}
            {move || (w.view.get() == View::Lens).then(|| view! {
                <div class="lens">
                    <super::lens::LensFigure lens=w.lens running=w.lens_running empty=Signal::derive(move || if w.poster.get() { "This figure is static: press Run live to read every layer." } else { "Run the text to see what each layer predicts." })/>
                </div>
            })}
            {move || (w.view.get() == View::Position).then(|| view! {
                <LostInTheMiddle
                    on_start=Callback::new(move |e| hv.with_value(|h| h.start_experiment(e)))
                    on_cancel=Callback::new(move |_| hv.with_value(|h| if let Some(e) = h.engine.borrow().as_ref() { e.cancel() }))
                    progress=w.exp_progress
                    outcome=w.outcome
                    ready=Signal::derive(|| true)
                    canvas_ref=exp_canvas/>
            })}
            <p class="aw-caption">{caption}</p>
            <div class="aw-foot">
                {move || (w.view.get() == View::Head && w.map.get().is_some()).then(|| view! {
                    <button on:click=move |_| if let (Some(c), Some(m)) = (canvas_ref.get_untracked(), w.map.get_untracked()) { if let Some(u) = png_2x(&c, &m, &tokens.get_untracked(), w.query.get_untracked(), w.look.style_untracked()) { download_url(&format!("attnlab-L{}-H{}.png", m.layer, m.head), &u) } }>"PNG"</button>
                })}
                {move || w.run.get().is_some().then(|| view! {
                    <button on:click=move |_| if let Some(r) = w.run.get_untracked() { download("attnlab-figure.json", "application/json", &export_json(&r, w.rows.get_untracked().as_ref(), w.layer.get_untracked(), w.head.get_untracked())) }>"JSON"</button>
                })}
                <a class="aw-open" href=playground_href target="_blank" rel="noopener">"Open in attnlab ↗"</a>
            </div>
        </div>
    }
}
