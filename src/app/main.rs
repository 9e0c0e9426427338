//! Entry point of the page (built by Trunk: `make serve`). Mounts the playground into the
//! element with id `attnlab` when the page has one, else into the body. `embed.js` loads the
//! same module for `<attn-lab>` widgets and sets `globalThis.attnlabEmbedOnly` first, so
//! nothing is mounted then.
fn main() {
    console_error_panic_hook::set_once();
    let embed_only = js_sys::Reflect::get(&js_sys::global(), &"attnlabEmbedOnly".into()).map(|v| v.is_truthy()).unwrap_or(false);
    if embed_only {
        return;
    }
    let target = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("attnlab"));
    match target.and_then(|el| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(el).ok()) {
        Some(el) => attnlab::app::mount_playground(el, None),
        None => leptos::mount::mount_to_body(attnlab::app::App),
    }
}
