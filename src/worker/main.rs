//! Entry point of the engine's Web Worker (built by Trunk as `attnlab-worker`).
fn main() {
    attnlab::worker::runtime::start();
}
