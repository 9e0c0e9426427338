//! Entry point of the browser page (built by Trunk: `make serve`).
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(attnlab::app::App);
}
