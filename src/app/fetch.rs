//! Text fetched on the page's thread: posters, tours, shipped results, long texts.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Fetches `url` as text, refusing more than `max` bytes (by its announced length before
/// reading it, and by what arrived).
pub async fn fetch_text_capped(url: &str, max: usize) -> Result<String, String> {
    let w = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = JsFuture::from(w.fetch_with_str(url)).await.map_err(|e| format!("{url}: network error {e:?}"))?.unchecked_into();
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let too_big = |n: f64| format!("{url} is {:.1} MB; at most {} KB are read", n / 1e6, max / 1024);
    if let Some(n) = resp.headers().get("content-length").ok().flatten().and_then(|l| l.parse::<f64>().ok()).filter(|n| *n > max as f64) {
        return Err(too_big(n));
    }
    let text = JsFuture::from(resp.text().map_err(|e| format!("{e:?}"))?).await.map_err(|e| format!("{e:?}"))?.as_string().unwrap_or_default();
    if text.len() > max {
        return Err(too_big(text.len() as f64));
    }
    Ok(text)
}

/// Fetches `url` as text on the page's thread.
pub async fn fetch_text(url: &str) -> Result<String, String> {
    fetch_text_capped(url, usize::MAX).await
}

