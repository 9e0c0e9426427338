//! The playground's "Embed" dialog: both snippets (an `<attn-lab>` element and an iframe for
//! learning platforms that strip scripts) for the current text, layer, head and view, copy
//! buttons, a live preview, and the figure JSON for an instant `result-src` poster.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::download;

/// Escapes text for an HTML attribute value in double quotes.
fn attr_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Everything the widget understands of what the playground shows, as the widget's attributes
/// (`view` one the widget draws). Defaults are left out, so snippets stay short.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedState {
    pub text: String,
    pub layer: usize,
    pub head: usize,
    /// The query token whose row is picked (None: the last).
    pub query: Option<usize>,
    pub view: &'static str,
    pub scale: &'static str,
    /// `blues` (the default) or `viridis`.
    pub palette: &'static str,
    pub hide_sink: bool,
    /// `unscaled` | `unmasked` | `norope`, or None.
    pub what_if: Option<&'static str>,
    /// `webgpu` | `cpu` when the page was told which (None: the widget decides).
    pub backend: Option<String>,
    /// A model other than the default, as an absolute URL.
    pub model_src: Option<String>,
    /// `view="generate"`: the writing settings (`gen`, `temperature`, `top-k`, …).
    pub gen: Vec<(&'static str, String)>,
    /// Heads knocked out (`L.H,L.*`), when any are.
    pub ablate: Option<String>,
    /// A what-if through the model and its layers, when one is applied.
    pub through: Option<(&'static str, String)>,
    /// The parts of the view kept (`panels`; None: all of them).
    pub panels: Option<String>,
}

impl EmbedState {
    /// (attribute, value) pairs in a stable order, `controls` included.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut a = vec![("text", self.text.clone()), ("layer", self.layer.to_string()), ("head", self.head.to_string())];
        if let Some(q) = self.query {
            a.push(("query", q.to_string()));
        }
        a.push(("view", self.view.to_string()));
        a.push(("controls", "compact".into()));
        if self.scale != "sqrt" {
            a.push(("scale", self.scale.to_string()));
        }
        if self.palette != "blues" {
            a.push(("palette", self.palette.to_string()));
        }
        if self.hide_sink {
            a.push(("sink", "hide".into()));
        }
        if let Some(w) = self.what_if {
            a.push(("whatif", w.to_string()));
        }
        a.extend(self.gen.iter().map(|(k, v)| (*k, v.clone())));
        if let Some(h) = &self.ablate {
            a.push(("ablate", h.clone()));
        }
        if let Some((w, l)) = &self.through {
            a.push(("through", w.to_string()));
            a.push(("through-layers", l.clone()));
        }
        if let Some(p) = &self.panels {
            a.push(("panels", p.clone()));
        }
        if let Some(b) = &self.backend {
            a.push(("backend", b.clone()));
        }
        if let Some(m) = &self.model_src {
            a.push(("model-src", m.clone()));
        }
        a
    }

    fn query_string(&self) -> String {
        let Ok(p) = web_sys::UrlSearchParams::new() else { return String::new() };
        for (k, v) in self.attributes() {
            p.append(k, &v);
        }
        String::from(p.to_string())
    }
}

/// The element snippet: a classic script (it loads even where the host sends no CORS headers,
/// so the widget can say what is missing), then the element.
pub fn element_snippet(base: &str, s: &EmbedState) -> String {
    let attrs: String = s.attributes().into_iter().map(|(k, v)| format!(" {k}=\"{}\"", attr_escape(&v))).collect();
    format!("<script src=\"{base}embed.js\" async></script>\n<attn-lab{attrs}></attn-lab>")
}

/// The iframe snippet (a fixed fallback height; `embed-resize.js` fits it to its content).
pub fn iframe_snippet(base: &str, s: &EmbedState) -> String {
    format!(
        "<iframe src=\"{base}embed.html?{}\" title=\"attnlab: where layer {}, head {} looks\" loading=\"lazy\" width=\"100%\" height=\"760\" style=\"border:0;max-width:720px\"></iframe>\n<script src=\"{base}embed-resize.js\"></script>",
        attr_escape(&s.query_string()),
        s.layer,
        s.head
    )
}

fn copy(text: &str) {
    let Some(w) = web_sys::window() else { return };
    let clipboard = js_sys::Reflect::get(&w.navigator(), &"clipboard".into()).ok();
    if let Some(c) = clipboard.filter(|c| !c.is_undefined()) {
        if let Ok(f) = js_sys::Reflect::get(&c, &"writeText".into()).and_then(|f| f.dyn_into::<js_sys::Function>()) {
            let _ = f.call1(&c, &text.into());
        }
    }
}

#[component]
pub fn EmbedDialog(
    /// What the playground shows now.
    state: EmbedState,
    /// The tab open in the playground, when a widget cannot draw it (its name for the note).
    unsupported: Option<&'static str>,
    /// The site's absolute URL (ending in `/`).
    base: String,
    /// The current result as JSON (for `result-src`).
    #[prop(into)]
    figure: Signal<Option<String>>,
    on_close: Callback<()>,
) -> impl IntoView {
    // The parts of the view the author keeps (none ticked: the whole view).
    let parts = super::View::parse(state.view).map(super::widget::panel_names).unwrap_or_default();
    let kept = RwSignal::new(Vec::<&'static str>::new());
    let current = {
        let state = state.clone();
        move || EmbedState { panels: kept.with(|k| (!k.is_empty()).then(|| k.join(","))), ..state.clone() }
    };
    let (element, iframe, preview) = {
        let (c1, c2, c3, b1, b2, b3) = (current.clone(), current.clone(), current, base.clone(), base.clone(), base.clone());
        (Memo::new(move |_| element_snippet(&b1, &c1())), Memo::new(move |_| iframe_snippet(&b2, &c2())), Memo::new(move |_| format!("{b3}embed.html?{}", c3().query_string())))
    };
    let copied = RwSignal::new(None::<&'static str>);
    let dialog: NodeRef<html::Div> = NodeRef::new();
    Effect::new(move |_| {
        if let Some(d) = dialog.get() {
            let _ = d.focus();
        }
    });
    view! {
        <div class="modal-backdrop" on:click=move |_| on_close.run(())>
            <div class="modal" role="dialog" aria-modal="true" aria-labelledby="embed-title" tabindex="-1" node_ref=dialog
                on:click=|ev| ev.stop_propagation()
                on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Escape" { on_close.run(()) }>
                <h2 id="embed-title">"Embed this figure"</h2>
                {unsupported.map(|tab| view! { <p class="notice embed-unsupported">{format!("The “{tab}” tab cannot be embedded yet: these snippets show the map of layer {} head {}, with your text, query token and settings.", state.layer, state.head)}</p> })}
                <p class="muted">"Paste either snippet into a course page. The element needs scripts; the iframe works where a learning platform strips them (Canvas, Moodle). The model (94 MB for SmolLM2, 253 MB for Gemma 3) downloads once per reader, only when a figure runs."</p>
                <h3>"Parts"</h3>
                <p class="muted">"Tick the parts of the figure to keep (none ticked: all of it), e.g. only the map and the table beside a paragraph that explains the rest."</p>
                <div class="embed-parts">
                    {parts.into_iter().map(|name| view! {
                        <label><input type="checkbox" value=name prop:checked=move || kept.with(|k| k.contains(&name)) on:change=move |ev| { let on = event_target_checked(&ev); kept.update(|k| { k.retain(|x| *x != name); if on { k.push(name) } }) }/>{format!(" {name} ")}</label>
                    }).collect_view()}
                </div>
                <h3>"Element"</h3>
                <textarea class="snippet snippet-element" readonly rows="3" prop:value=move || element.get()></textarea>
                <button on:click=move |_| { copy(&element.get_untracked()); copied.set(Some("element")) }>{move || if copied.get() == Some("element") { "Copied" } else { "Copy element" }}</button>
                <h3>"Iframe"</h3>
                <textarea class="snippet snippet-iframe" readonly rows="3" prop:value=move || iframe.get()></textarea>
                <button on:click=move |_| { copy(&iframe.get_untracked()); copied.set(Some("iframe")) }>{move || if copied.get() == Some("iframe") { "Copied" } else { "Copy iframe" }}</button>
                <h3>"Instant poster"</h3>
                <p class="muted">"Save the figure's JSON beside your page and add result-src=\"figure.json\" to the element: it draws at once, with no model download, until a reader presses Run live."</p>
                <button disabled=move || figure.get().is_none() on:click=move |_| if let Some(f) = figure.get_untracked() { download("attnlab-figure.json", "application/json", &f) }>"Download figure JSON"</button>
                <h3>"Preview"</h3>
                <iframe class="embed-preview" src=move || preview.get() title="preview of the embedded figure"></iframe>
                <div class="modal-actions"><button class="primary" on:click=move |_| on_close.run(())>"Close"</button></div>
            </div>
        </div>
    }
}
