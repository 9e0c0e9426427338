//! Data parallelism: rayon's pool natively, a plain loop on wasm32 (the page runs the CPU
//! engine in one Web Worker; threads there need SharedArrayBuffer and COOP/COEP headers).

/// Runs `f(i)` for every `i` in `0..n`, in parallel where threads exist.
///
/// With one thread in the pool the loop runs inline: handing each kernel call to rayon's one
/// worker and sleeping until it is done cost about 20 ms per decoded token of SmolLM2
/// (≈ 250 calls, each a thread wake-up) with `RAYON_NUM_THREADS=1`.
#[cfg(not(target_arch = "wasm32"))]
pub fn for_each_index<F: Fn(usize) + Sync + Send>(n: usize, f: F) {
    use rayon::prelude::*;
    if rayon::current_num_threads() == 1 {
        (0..n).for_each(f)
    } else {
        (0..n).into_par_iter().for_each(f);
    }
}

#[cfg(target_arch = "wasm32")]
pub fn for_each_index<F: Fn(usize)>(n: usize, f: F) {
    (0..n).for_each(f);
}

/// Runs `f` on one of the pool's threads (natively), so that the kernels it calls split their
/// work from inside the pool instead of handing each call over from outside and sleeping until
/// it is done: a decoding step makes ~250 such calls. SmolLM2, two threads on the 2-core VM:
/// 26–27 ms per token handed over, 15.5–16 ms on the pool (one thread: 20 ms).
#[cfg(not(target_arch = "wasm32"))]
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() == 1 {
        return f();
    }
    let mut out = None;
    rayon::scope(|_| out = Some(f()));
    out.expect("the scope ran")
}

#[cfg(target_arch = "wasm32")]
pub fn on_pool<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Number of threads the CPU backend will use.
pub fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        rayon::current_num_threads()
    }
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
}

/// A raw pointer that tasks may share because each writes a disjoint region (every use
/// states which region in its SAFETY comment).
#[derive(Clone, Copy)]
pub struct SyncPtr(pub *mut f32);
// SAFETY: see the type's documentation; the pointer is only dereferenced for disjoint writes.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// Accessor (closures must capture the wrapper, not its raw field).
    pub fn get(self) -> *mut f32 {
        self.0
    }
}
