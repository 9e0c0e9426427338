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

fn query(text: &str, layer: usize, head: usize, view: &str, model_src: Option<&str>) -> String {
    let Ok(p) = web_sys::UrlSearchParams::new() else { return String::new() };
    if let Some(m) = model_src {
        p.append("model-src", m);
    }
    p.append("text", text);
    p.append("layer", &layer.to_string());
    p.append("head", &head.to_string());
    p.append("view", view);
    p.append("controls", "compact");
    String::from(p.to_string())
}

/// The element snippet (`model_src`: a model other than the default, as an absolute URL).
pub fn element_snippet(base: &str, text: &str, layer: usize, head: usize, view: &str, model_src: Option<&str>) -> String {
    let model = model_src.map(|m| format!(" model-src=\"{}\"", attr_escape(m))).unwrap_or_default();
    format!(
        "<script type=\"module\" src=\"{base}embed.js\"></script>\n<attn-lab text=\"{}\" layer=\"{layer}\" head=\"{head}\" view=\"{view}\" controls=\"compact\"{model}></attn-lab>",
        attr_escape(text)
    )
}

/// The iframe snippet (a fixed fallback height; `embed-resize.js` fits it to its content).
pub fn iframe_snippet(base: &str, text: &str, layer: usize, head: usize, view: &str, model_src: Option<&str>) -> String {
    format!(
        "<iframe src=\"{base}embed.html?{}\" title=\"attnlab: where layer {layer}, head {head} looks\" loading=\"lazy\" width=\"100%\" height=\"760\" style=\"border:0;max-width:720px\"></iframe>\n<script src=\"{base}embed-resize.js\"></script>",
        attr_escape(&query(text, layer, head, view, model_src))
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
    text: String,
    layer: usize,
    head: usize,
    view: &'static str,
    /// The site's absolute URL (ending in `/`).
    base: String,
    /// The model when it is not the default (absolute URL).
    model_src: Option<String>,
    /// The current result as JSON (for `result-src`).
    #[prop(into)]
    figure: Signal<Option<String>>,
    on_close: Callback<()>,
) -> impl IntoView {
    let view = if view == "position" || view == "tokens" { view } else { view };
    let m = model_src.as_deref();
    let element = element_snippet(&base, &text, layer, head, view, m);
    let iframe = iframe_snippet(&base, &text, layer, head, view, m);
    let preview = format!("{base}embed.html?{}", query(&text, layer, head, view, m));
    let copied = RwSignal::new(None::<&'static str>);
    let dialog: NodeRef<html::Div> = NodeRef::new();
    Effect::new(move |_| {
        if let Some(d) = dialog.get() {
            let _ = d.focus();
        }
    });
    let (e2, i2) = (element.clone(), iframe.clone());
    view! {
        <div class="modal-backdrop" on:click=move |_| on_close.run(())>
            <div class="modal" role="dialog" aria-modal="true" aria-labelledby="embed-title" tabindex="-1" node_ref=dialog
                on:click=|ev| ev.stop_propagation()
                on:keydown=move |ev: web_sys::KeyboardEvent| if ev.key() == "Escape" { on_close.run(()) }>
                <h2 id="embed-title">"Embed this figure"</h2>
                <p class="muted">"Paste either snippet into a course page. The element needs scripts; the iframe works where a learning platform strips them (Canvas, Moodle). The model (94 MB for SmolLM2, 253 MB for Gemma 3) downloads once per reader, only when a figure runs."</p>
                <h3>"Element"</h3>
                <textarea class="snippet snippet-element" readonly rows="3" prop:value=element.clone()></textarea>
                <button on:click=move |_| { copy(&e2); copied.set(Some("element")) }>{move || if copied.get() == Some("element") { "Copied" } else { "Copy element" }}</button>
                <h3>"Iframe"</h3>
                <textarea class="snippet snippet-iframe" readonly rows="3" prop:value=iframe.clone()></textarea>
                <button on:click=move |_| { copy(&i2); copied.set(Some("iframe")) }>{move || if copied.get() == Some("iframe") { "Copied" } else { "Copy iframe" }}</button>
                <h3>"Instant poster"</h3>
                <p class="muted">"Save the figure's JSON beside your page and add result-src=\"figure.json\" to the element: it draws at once, with no model download, until a reader presses Run live."</p>
                <button disabled=move || figure.get().is_none() on:click=move |_| if let Some(f) = figure.get_untracked() { download("attnlab-figure.json", "application/json", &f) }>"Download figure JSON"</button>
                <h3>"Preview"</h3>
                <iframe class="embed-preview" src=preview title="preview of the embedded figure"></iframe>
                <div class="modal-actions"><button class="primary" on:click=move |_| on_close.run(())>"Close"</button></div>
            </div>
        </div>
    }
}
