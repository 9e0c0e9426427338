//! One component per part of the playground, each reading the shared [`Page`] state from
//! context: the header (backend, model picker, file), the input bar, the head view, all
//! heads, the attention sink, lost in the middle, and the embed dialog.

use leptos::html;
use leptos::prelude::*;

use super::embed_dialog::EmbedDialog;
use super::experiment::{self, outcome_csv, LostInTheMiddle};
use super::heatmap::{self, Heatmap};
use super::panels::{ModelView, SinkPanel};
use super::state::Page;
use super::{download, download_url, layer_kind, map_csv, switch_model, Phase, View, MODELS};
use crate::worker::protocol::Request;

fn page() -> Page {
    expect_context::<Page>()
}

/// Title, backend badge, links, model picker and "Open GGUF…".
#[component]
pub fn Header(
    /// The picker's current id ("" for the reader's own file).
    picked: &'static str,
) -> impl IntoView {
    let p = page();
    // A file the reader opened (none of the site's models): named in the picker with its
    // architecture and attention layout.
    let own_file = move || p.model.with(|m| m.as_ref().is_some_and(|m| !MODELS.iter().any(|k| k.1.starts_with(&m.display_name))));
    let own_file_label = move || {
        p.model.with(|m| match m {
            Some(m) if own_file() => format!("Your file: {} — {}, {}", m.display_name, crate::model::registry::family(&m.architecture), super::heads_words(m.n_head, m.n_kv_head)),
            _ => "Your GGUF file".to_string(),
        })
    };
    let on_file = move |ev: web_sys::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        if let Some(f) = input.files().and_then(|l| l.get(0)) {
            p.load_file(f);
        }
        input.set_value("");
    };
    view! {
        <header class="top">
            <div>
                <h1>"attnlab"</h1>
                <p class="lede">"Where does each attention head of a real language model look? It runs here, in your browser."</p>
            </div>
            <div class="model-status">
                {move || p.backend.get().map(|(b, adapter, note)| view! {
                    <span class="badge" class:cpu=b == "cpu" tabindex="0" title=format!("Details: {adapter}") data-adapter=adapter.clone()>{super::backend_words(&b)}</span>
                    {note.map(|n| view! { <span class="note">{n}</span> })}
                })}
                <ThemeToggle/>
                <a class="lesson-link" href="lesson.html">"For teachers: lesson & embeds"</a>
                <button class="embed-button" on:click=move |_| p.embed_open.set(true) aria-haspopup="dialog">"Embed"</button>
                <label class="model-picker">"Model "
                    <select on:change=move |ev| { let v = event_target_value(&ev); if !v.is_empty() { switch_model(&v) } }>
                        {MODELS.iter().map(|(id, label, _)| view! { <option value=*id selected=move || *id == picked && !own_file()>{*label}</option> }).collect_view()}
                        {move || (picked.is_empty() || own_file()).then(|| view! { <option value="" selected=true>{own_file_label()}</option> })}
                    </select>
                </label>
                <label class="file-button">"Open GGUF…"<input type="file" accept=".gguf" on:change=on_file/></label>
            </div>
        </header>
    }
}

/// Light, dark, or the reader's own setting (the default), kept in this browser.
#[component]
fn ThemeToggle() -> impl IntoView {
    const KEY: &str = "attnlab-theme";
    let storage = || web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    let theme = RwSignal::<String>::new(storage().and_then(|s| s.get_item(KEY).ok().flatten()).filter(|t| t == "light" || t == "dark").unwrap_or_else(|| "auto".into()));
    Effect::new(move |_| {
        let t = theme.get();
        if let Some(root) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.document_element()) {
            let _ = if t == "auto" { root.remove_attribute("data-theme") } else { root.set_attribute("data-theme", &t) };
        }
        if let Some(s) = storage() {
            let _ = if t == "auto" { s.remove_item(KEY) } else { s.set_item(KEY, &t) };
        }
    });
    let next = move |t: &str| match t { "auto" => "dark", "dark" => "light", _ => "auto" };
    view! {
        <button class="theme-toggle" title="Colours: your system's setting, dark or light" aria-label=move || format!("colour theme: {} (change)", theme.get())
            on:click=move |_| theme.set(next(&theme.get_untracked()).to_string())>
            {move || match theme.get().as_str() { "dark" => "◐ Dark", "light" => "◑ Light", _ => "◒ Auto" }}
        </button>
    }
}

/// The model download / parse / upload progress, then errors.
#[component]
pub fn Status() -> impl IntoView {
    let p = page();
    view! {
        {move || (p.phase.get() == Phase::LoadingModel).then(|| {
            let (phase, done, total) = p.progress.get();
            let pct = total.map(|t| done / t.max(1.0) * 100.0).unwrap_or(0.0);
            let label = match phase.as_str() { "cache" => "Loading the model from the browser cache", "parse" => "Reading the model", "upload" => "Uploading weights to the GPU", "open" => "Opening the file", "self-check" => "Checking the GPU's numbers against the CPU", _ => "Downloading the model" };
            view! {
                <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{pct:.0}")>
                    <div class="bar" style=format!("width:{pct:.1}%")></div>
                    <span>{format!("{label}: {:.1} MB{}", done / 1e6, total.map(|t| format!(" of {:.1} MB", t / 1e6)).unwrap_or_default())}</span>
                </div>
            }
        })}
        {move || p.error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        {move || p.too_long.get().map(|(n, max, _, why)| view! {
            <div class="error too-long" role="alert">
                <p>{format!("The text has {n} tokens: {why}. Nothing was cut.")}</p>
                <button class="primary" on:click=move |_| p.truncate_and_run()>{format!("Keep the first {max} tokens and run")}</button>
            </div>
        })}
        {move || { let n = p.notice.get(); (!n.is_empty()).then(|| view! {
            <div class="notice" role="status"><ul>{n.into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}</ul><button class="link" on:click=move |_| p.notice.set(vec![])>"Dismiss"</button></div>
        }) }}
    }
}

/// Text, Run, layer and head, what the layer sees; then timings and next-token candidates.
#[component]
pub fn InputBar() -> impl IntoView {
    let p = page();
    view! {
        <section class="input">
            <label for="attnlab-text">"Text"</label>
            <textarea id="attnlab-text" rows="3" prop:value=move || p.text.get() on:input=move |ev| p.text.set(event_target_value(&ev))
                on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) { p.start_run() }></textarea>
            <div class="controls">
                <button class="primary" on:click=move |_| p.start_run() disabled=move || matches!(p.phase.get(), Phase::Running | Phase::LoadingModel)>
                    {move || if p.phase.get() == Phase::Running { "Running…" } else { "Run" }}
                </button>
                <super::generate::GenerateControls/>
                <label>"Layer "<input type="number" name="layer" min="0" max=move || p.model.get().map(|m| m.n_layer - 1).unwrap_or(0) prop:value=move || p.layer.get()
                    on:change=move |ev| { let l = super::corrected(&ev, p.layer.get_untracked(), p.model.get_untracked().map(|m| m.n_layer)); p.set_layer_head(Some(l), None) }/></label>
                <label>"Head "<input type="number" name="head" min="0" max=move || p.model.get().map(|m| m.n_head - 1).unwrap_or(0) prop:value=move || p.head.get()
                    on:change=move |ev| { let h = super::corrected(&ev, p.head.get_untracked(), p.model.get_untracked().map(|m| m.n_head)); p.set_layer_head(None, Some(h)) }/></label>
                <span class="muted">{move || p.model.get().map(|m| format!("KV head {} of {}", p.head.get() / (m.n_head / m.n_kv_head.max(1)).max(1), m.n_kv_head))}</span>
                <span class="muted layer-kind">{move || p.model.get().map(|m| layer_kind(&m, p.layer.get()))}</span>
                {move || p.text.with(|t| t.len() > super::URL_TEXT_MAX).then(|| view! { <span class="muted url-note">{format!("longer than {} KB: the link keeps everything but the text", super::URL_TEXT_MAX / 1000)}</span> })}
                // A run sent while an experiment or sweep runs waits for it, and says so.
                {move || (p.phase.get() == Phase::Running).then(|| p.progress.get().0).filter(|s| s.starts_with("waiting")).map(|s| view! { <span class="muted waiting" role="status">{s}</span> })}
            </div>
        </section>
        {move || p.run.get().map(|r| {
            let t = &r.report.timings_ms;
            view! {
                <p class="timings">{format!("{} tokens · tokenize {:.1} ms · forward {:.0} ms · maps {:.0} ms{}", r.report.ids.len(), t.tokenize, t.forward, t.analysis, r.memory_bytes.map(|b| format!(" · engine memory {:.0} MiB", b as f64 / 1048576.0)).unwrap_or_default())}</p>
                <p class="next">"Next token: "{r.next_tokens.iter().take(5).map(|(t, p)| view! { <code>{format!("{t:?}")}</code><span>{format!(" {:.1}%  ", p * 100.0)}</span> }).collect_view()}</p>
            }
        })}
    }
}

/// The view tabs.
#[component]
pub fn Tabs() -> impl IntoView {
    let p = page();
    view! {
        <nav class="tabs" role="tablist">
            {[View::Head, View::Model, View::Sinks, View::Position, View::Patterns, View::Lens, View::Compare, View::Cost, View::Lab].into_iter().map(|v| view! {
                <button role="tab" aria-selected=move || (p.view.get() == v).to_string() class:active=move || p.view.get() == v on:click=move |_| p.choose_view(v)>
                    {super::tab_name(v)}
                </button>
            }).collect_view()}
        </nav>
    }
}

/// One head's map with zoom and exports (PNG, CSV, JSON).
#[component]
pub fn HeadView() -> impl IntoView {
    let p = page();
    let canvas_ref: NodeRef<html::Canvas> = NodeRef::new();
    let tokens = p.tokens();
    let on_zoom = Callback::new(move |rc| p.request_head(Some(rc)));
    view! {
        <div class="panel" class:hidden=move || p.view.get() != View::Head>
            <div class="head-title">
                <strong>{move || format!("Layer {} · head {}", p.layer.get(), p.head.get())}</strong>
                {move || p.map.get().filter(|m| m.pooled()).map(|m| view! { <span class="muted">{format!(" pooled: {}×{} tokens per cell (max) — click to zoom", m.block_q, m.block_k)}</span> })}
                {move || p.map.get().filter(|m| m.rows != (0, m.n_tokens) || m.cols != (0, m.n_tokens)).map(|m| view! {
                    <span class="muted">{format!(" queries {}–{}, keys {}–{} ", m.rows.0, m.rows.1 - 1, m.cols.0, m.cols.1 - 1)}</span>
                    <button on:click=move |_| p.request_head(None)>"Whole map"</button>
                })}
            </div>
            <div class="head-map-scroll"><Heatmap map=p.map tokens=tokens query=p.query on_zoom=on_zoom canvas_ref=canvas_ref/></div>
            <super::inside::InsideHead/>
            <super::vectors::QkPanel/>
            {move || p.model.get().and_then(|m| m.layer_window.iter().flatten().next().copied()).map(|w| view! {
                <p class="muted window-note">{format!("Full vs sliding window: in a global layer every query is compared with every earlier key, so the work grows with n²; in a local layer only with the last {w}, so it grows with n·{w} and keys further back get exactly zero (the dashed edge on inputs longer than {w} tokens). This model has a global layer every sixth; information from far back reaches later tokens through them.")}</p>
            })}
            <div class="exports">
                <button on:click=move |_| if let (Some(c), Some(m)) = (canvas_ref.get_untracked(), p.map.get_untracked()) { if let Some(u) = heatmap::png_2x(&c, &m, &tokens.get_untracked(), p.query.get_untracked(), p.look.style_untracked()) { download_url(&format!("attnlab-L{}-H{}.png", m.layer, m.head), &u) } }>"PNG (2×)"</button>
                <button on:click=move |_| if let Some(m) = p.map.get_untracked() { download(&format!("attnlab-L{}-H{}.csv", m.layer, m.head), "text/csv", &map_csv(&m, &tokens.get_untracked())) }>"CSV"</button>
                <button on:click=move |_| p.export_download()>"JSON"</button>
            </div>
        </div>
    }
}

/// Every head as a thumbnail, grouped under its KV head; "find the head" ranks them by how much
/// the chosen query token attends to a chosen key token.
#[component]
pub fn AllHeadsView() -> impl IntoView {
    let p = page();
    let open = Callback::new(move |(l, h)| p.open_head(l, h));
    let n_head = move || p.model.with(|m| m.as_ref().map(|m| m.n_head).unwrap_or(usize::MAX));
    let bars = Signal::derive(move || if p.row_bars.get() { p.query_rows.with(|r| r.as_ref().map(|(_, rows)| (rows.clone(), p.key.get()))) } else { None });
    view! {
        <div class="panel" class:hidden=move || p.view.get() != View::Model>
            <FindHead/>
            <p class="pick-bar">
                <super::knockout::PickMode/>" "
                {move || { let k = p.picked.get(); if k.is_empty() { "(or shift-click heads) to choose heads to knock out.".to_string() } else { format!("Picked for a knock-out: {} ", crate::analysis::heads::heads_spec(&k, n_head())) } }}
                <button class:hidden=move || p.picked.with(|k| k.is_empty()) on:click=move |_| { p.knock_out(); p.choose_view(View::Patterns) }>"Knock them out"</button>
            </p>
            {move || p.model.get().map(|m| view! { <ModelView thumbs=p.thumbs n_head=m.n_head n_kv_head=m.n_kv_head layer_window=m.layer_window.clone() current=Signal::derive(move || (p.layer.get(), p.head.get())) on_open=open on_pick=Callback::new(move |(l, h)| p.toggle_pick(l, h)) picked=p.picked pick_mode=p.pick_mode bars=bars/> })}
        </div>
    }
}

/// "Find the head": pick a query token (in the strip) and a key token; every head ranked by
/// p(query → key), the top ones to open, the all-heads view as bars of the query's row, a CSV.
#[component]
fn FindHead() -> impl IntoView {
    let p = page();
    let tokens = p.tokens();
    let token = move |i: usize| tokens.with(|t| t.get(i).map(|s| format!("‘{}’", s.replace('\n', "⏎"))).unwrap_or_default());
    let n_head = move || p.model.with(|m| m.as_ref().map(|m| m.n_head).unwrap_or(1));
    let ranked = move || {
        let k = p.key.get()?;
        p.query_rows.with(|r| r.as_ref().map(|(_, rows)| crate::analysis::heads::rank_by_key(rows, n_head(), k)))
    };
    let csv = move || {
        let (Some((q, rows)), Some(n)) = (p.query_rows.get_untracked(), p.model.with_untracked(|m| m.as_ref().map(|m| m.n_head))) else { return };
        let t = tokens.get_untracked();
        let mut out = String::from("\"layer.head\"");
        for j in 0..=q {
            out.push_str(&format!(",\"{j}:{}\"", t.get(j).cloned().unwrap_or_default().replace('"', "\"\"")));
        }
        out.push('\n');
        for (i, r) in rows.iter().enumerate() {
            out.push_str(&format!("\"{}.{}\"", i / n, i % n));
            for v in r {
                out.push_str(&format!(",{v}"));
            }
            out.push('\n');
        }
        super::download(&format!("attnlab-query-{q}-every-head.csv"), "text/csv", &out);
    };
    view! {
        <section class="find-head" aria-labelledby="find-head-title">
            <h3 id="find-head-title">"Find the head"</h3>
            <p class="find-controls">
                "From the token "
                <strong class="find-query">{move || p.query.get().map(token).unwrap_or_else(|| "(click a token above)".into())}</strong>
                {move || p.query.get().map(|q| format!(" (token {q}; click another token above to change it)"))}
                " to "
                <select class="find-key" aria-label="the key token" on:change=move |ev| p.key.set(event_target_value(&ev).parse().ok())>
                    <option value="" selected=move || p.key.get().is_none()>"choose a token…"</option>
                    {move || (0..=p.query.get().unwrap_or(0)).filter(|_| p.run.with(|r| r.is_some())).map(|j| view! { <option value=j.to_string() selected=move || p.key.get() == Some(j)>{format!("{j}: {}", token(j))}</option> }).collect_view()}
                </select>
                ": every head ranked by how much of the first token's attention goes to the second."
            </p>
            {move || match (p.query_rows.with(|r| r.is_some()), ranked()) {
                (false, _) => view! { <p class="muted">{move || if p.run.with(|r| r.is_none()) { "Run a text first." } else { "Reading every head…" }}</p> }.into_any(),
                (true, None) => view! { <p class="muted">"Choose the token it should look at."</p> }.into_any(),
                (true, Some(r)) => {
                    let total = r.len();
                    view! {
                        <ol class="ranked find-ranked">
                            {r.into_iter().take(8).map(|(l, h, v)| view! {
                                <li><button class="link" on:click=move |_| p.open_head(l, h)>{format!("layer {l} · head {h}")}</button>
                                    <span class="bar after" style=format!("width:{:.0}px", 80.0 * v)></span><span class="find-value">{format!(" {v:.3}")}</span></li>
                            }).collect_view()}
                        </ol>
                        <p class="muted">{format!("The top 8 of {total} heads; the attention of one head is not the whole story (the knock-out below tests what a head does).")}</p>
                    }.into_any()
                }
            }}
            <p class="find-options">
                <label class="pick-mode"><input type="checkbox" class="row-bars" prop:checked=move || p.row_bars.get() on:change=move |ev| p.row_bars.set(event_target_checked(&ev))/>" Show each head's row for this token (bars: one per earlier token, height = attention; the chosen token in orange) instead of whole maps"</label>
                " "<button on:click=move |_| csv() disabled=move || p.query_rows.with(|r| r.is_none())>"CSV (every head's row)"</button>
            </p>
        </section>
    }
}

/// Mass on the first token for every head, and why the first tokens matter.
#[component]
pub fn SinkView(
    /// Where the site's files are (ending in `/`).
    base: String,
) -> impl IntoView {
    let p = page();
    let open = Callback::new(move |(l, h)| p.open_head(l, h));
    view! {
        <div class="panel" class:hidden=move || p.view.get() != View::Sinks>
            {move || p.run.with(|r| r.is_none()).then(|| view! { <p class="muted waiting-first">{move || if p.phase.get() == Phase::LoadingModel { "The chart appears once the model has read the text (it is loading)." } else { "The chart appears once the model has read the text: press Run." }}</p> })}
            <div class:hidden=move || p.run.with(|r| r.is_none())>
            <SinkPanel
                sink=Signal::derive(move || p.run.with(|r| r.as_ref().map(|r| r.report.sink_mass_key0.clone()).unwrap_or_default()))
                per_layer=Signal::derive(move || p.run.with(|r| r.as_ref().map(|r| r.sink_per_layer.clone()).unwrap_or_default()))
                baseline=Signal::derive(move || p.run.with(|r| r.as_ref().map(|r| r.sink_uniform_baseline).unwrap_or(0.0)))
                on_open=open/>
            </div>
            <super::streaming::SinksMatter base=base/>
        </div>
    }
}

/// The lost-in-the-middle experiment with its exports.
#[component]
pub fn PositionView() -> impl IntoView {
    let p = page();
    let canvas_ref: NodeRef<html::Canvas> = NodeRef::new();
    view! {
        <div class="panel" class:hidden=move || p.view.get() != View::Position>
            <LostInTheMiddle
                on_start=Callback::new(move |e| p.start_experiment(e))
                on_cancel=Callback::new(move |_| { p.send(Request::Cancel); })
                progress=p.exp_progress
                outcome=p.exp_outcome
                ready=Signal::derive(move || p.model.get().is_some())
                canvas_ref=canvas_ref/>
            <div class="exports" class:hidden=move || p.exp_outcome.get().is_none()>
                <button on:click=move |_| if let Some(o) = p.exp_outcome.get_untracked() { download("attnlab-position.csv", "text/csv", &outcome_csv(&o)) }>"CSV"</button>
                <button on:click=move |_| if let Some(o) = p.exp_outcome.get_untracked() { if let Some(u) = experiment::attention_png_2x(&o) { download_url("attnlab-position-attention.png", &u) } }>"PNG (2×)"</button>
            </div>
        </div>
    }
}

/// The embed dialog, while open: everything the widget understands of what is shown.
#[component]
pub fn EmbedView(
    base: String,
    /// The model's absolute URL when it is not the default one.
    model_src: Option<String>,
    /// `?backend=` as the page was opened (`webgpu` | `cpu`).
    backend: Option<String>,
) -> impl IntoView {
    let p = page();
    let state = move || {
        // A generation on screen embeds as the writing view, with its settings.
        let writing = p.generation.with_untracked(|g| g.is_some());
        let v = if writing { View::Generate } else { p.view.get_untracked() };
        let supported = super::widget::WIDGET_VIEWS.contains(&v);
        let gen = if writing { p.gen.get_untracked().params().into_iter().map(|(k, v)| (match k { "top_k" => "top-k", "top_p" => "top-p", k => k }, v)).collect() } else { vec![] };
        let last = p.run.with_untracked(|r| r.as_ref().map(|r| r.report.ids.len().saturating_sub(1)));
        let style = p.look.style_untracked();
        let state = super::embed_dialog::EmbedState {
            text: p.text.get_untracked(),
            layer: p.layer.get_untracked(),
            head: p.head.get_untracked(),
            query: p.query.get_untracked().filter(|q| Some(*q) != last),
            view: if supported { v.as_str() } else { View::Head.as_str() },
            scale: style.colour.as_str(),
            palette: style.palette.as_str(),
            hide_sink: style.hide_sink,
            what_if: style.what_if.param(),
            backend: backend.clone(),
            model_src: model_src.clone(),
            gen,
            ablate: Some(crate::analysis::heads::heads_spec(&p.knocked.get_untracked(), p.model.with_untracked(|m| m.as_ref().map(|m| m.n_head)).unwrap_or(usize::MAX))).filter(|s| !s.is_empty()),
            through: p.through.get_untracked().map(|(w, l)| (w.name(), l)),
            panels: None,
        };
        (state, (!supported).then(|| super::tab_name(v)))
    };
    view! {
        {move || p.embed_open.get().then(|| {
            let (state, unsupported) = state();
            view! {
                <EmbedDialog state=state unsupported=unsupported base=base.clone()
                    figure=Signal::derive(move || p.run.get().map(|r| super::export_json(&r, p.rows.get().as_ref(), p.layer.get(), p.head.get())))
                    on_close=Callback::new(move |_| p.embed_open.set(false))/>
            }
        })}
    }
}
