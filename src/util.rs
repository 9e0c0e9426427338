//! Small helpers shared by every layer.

/// Wall-clock milliseconds since `start()`, natively and in the browser
/// (`std::time::Instant` panics on wasm32-unknown-unknown).
pub struct Clock {
    #[cfg(not(target_arch = "wasm32"))]
    t0: std::time::Instant,
    #[cfg(target_arch = "wasm32")]
    t0: f64,
}

impl Clock {
    pub fn start() -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Clock { t0: std::time::Instant::now() }
        }
        #[cfg(target_arch = "wasm32")]
        {
            Clock { t0: js_sys::Date::now() }
        }
    }

    pub fn ms(&self) -> f64 {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.t0.elapsed().as_secs_f64() * 1e3
        }
        #[cfg(target_arch = "wasm32")]
        {
            js_sys::Date::now() - self.t0
        }
    }
}
