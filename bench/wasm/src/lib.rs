//! attnlab's CPU engine as a bare WebAssembly module (no wasm-bindgen, no worker, no page):
//! `check` runs the fused gemv of every format against f64 sums, `setup`/`run` time one kind
//! of matrix through the gemv (1–3 tokens) or the panel kernel (prefill), and `load`/`step`
//! run the real decoder on a GGUF, one step per call. Driven by `node.mjs` and `chromium.mjs`.
use attnlab::backends::cpu::{ops, panel};
use attnlab::model::gguf::GgmlType;
use attnlab::model::quant::QTensor;

use attnlab::model::quant::quantize::{random_matrix as weights, random_values as values};

/// Number of failing values (0: all within 1e-5 of Σ|x·w|); also counts checks in CHECKS.
#[no_mangle]
pub extern "C" fn check() -> u32 {
    let cases = [
        (GgmlType::Q4_0, &[32, 96, 2048][..]), (GgmlType::Q4_1, &[32, 576, 2048]), (GgmlType::Q5_0, &[32, 160, 2048]),
        (GgmlType::Q8_0, &[32, 640, 2048]), (GgmlType::Q4K, &[256, 768, 2048]), (GgmlType::Q6K, &[256, 512, 2048]),
        (GgmlType::F16, &[7, 40, 2053]), (GgmlType::F32, &[1, 33, 2051]),
    ];
    let mut bad = 0;
    let mut checks = 0u32;
    for (ty, widths) in cases {
        for &cols in widths {
            for rows in [1, 13, 70] {
                let w = weights(ty, rows, cols, (rows * cols) as u64);
                let wf = w.to_f32();
                for n in 1..=ops::GEMV_MAX_TOKENS {
                    let x = values(n * cols, n as u64 + 40);
                    let mut got = vec![f32::NAN; n * rows];
                    ops::matmul_qt(&x, n, &w, &mut got);
                    for t in 0..n {
                        for r in 0..rows {
                            let (want, scale) = (0..cols).map(|c| x[t * cols + c] as f64 * wf[r * cols + c] as f64).fold((0.0, 0.0), |(s, a), v| (s + v, a + f64::abs(v)));
                            checks += 1;
                            if !((got[t * rows + r] as f64 - want).abs() <= 1e-5 * scale + 1e-30) { bad += 1; }
                        }
                    }
                }
            }
        }
    }
    unsafe { CHECKS = checks };
    bad
}

static mut CHECKS: u32 = 0;
#[no_mangle]
pub extern "C" fn checks() -> u32 { unsafe { CHECKS } }

static mut BENCH: Vec<(QTensor, Vec<f32>, Vec<f32>)> = Vec::new();

/// Sets up `copies` copies of a (rows, cols) matrix (ty 0: Q4_1, 1: Q8_0) and n tokens of x.
#[no_mangle]
pub extern "C" fn setup(ty: u32, rows: usize, cols: usize, copies: usize, n: usize) {
    let ty = if ty == 0 { GgmlType::Q4_1 } else { GgmlType::Q8_0 };
    let w = weights(ty, rows, cols, 1);
    unsafe { BENCH = (0..copies).map(|_| (QTensor::new("w", ty, rows, cols, w.data().to_vec()).unwrap(), values(n * cols, 2), vec![0.0; n * rows])).collect(); }
}

/// One pass over the set-up matrices: path 0 = matmul_qt (gemv for n ≤ 3), 1 = the panel kernel.
#[no_mangle]
pub extern "C" fn run(path: u32, n: usize) -> f32 {
    let mut s = 0.0;
    #[allow(static_mut_refs)]
    for (w, x, out) in unsafe { BENCH.iter_mut() } {
        if path == 0 { ops::matmul_qt(x, n, w, out) } else { panel::matmul_qt(x, n, w, out) }
        s += out[0];
    }
    s
}

// ---- the decoder on a real model ----
use attnlab::generate::{Decoder, GenOptions, Generator};
static mut GEN: Option<Generator<'static>> = None;

/// `len` bytes for the caller to fill (the GGUF), leaked until [`load`] takes them.
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    let mut v = vec![0u8; len];
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

/// Polls a future that never waits (the CPU decoder's steps).
fn poll<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the CPU decoder waited"),
    }
}

/// The two prompts of tests/web/generate-figures.mjs.
fn prompt(long: bool) -> String {
    if long { ["The quick brown fox jumps over the lazy dog while the cat sleeps."; 8].join(" ") } else { "The capital of France is".into() }
}

/// Loads the GGUF at (ptr, len) and sets up `n` greedy tokens after prompt 0 (5 tokens) or
/// 1 (120 tokens), keeping head 0.0's rows as the page's worker keeps the selected head's.
/// Returns the prompt's length.
#[no_mangle]
pub extern "C" fn load(ptr: *mut u8, len: usize, n: usize, long: u32) -> u32 {
    // SAFETY: (ptr, len) is a Vec leaked by `alloc`.
    let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
    let model: &'static attnlab::model::Model = Box::leak(Box::new(attnlab::model::Model::from_gguf_vec(bytes).expect("a GGUF attnlab reads")));
    let ids = model.tokenizer.encode(&prompt(long == 1));
    let o = GenOptions { max_tokens: n, ignore_eos: true, heads: vec![(0, 0)], ..Default::default() };
    let capacity = attnlab::generate::capacity(model, ids.len(), &o);
    let g = Generator::new(Decoder::cpu(model, capacity), model, &ids, &o).expect("a valid generation");
    unsafe { GEN = Some(g) };
    ids.len() as u32
}

/// One model step (the prompt's prefill first); the token chosen, or u32::MAX once done.
#[no_mangle]
pub extern "C" fn step() -> u32 {
    #[allow(static_mut_refs)]
    let g = unsafe { GEN.as_mut().expect("load first") };
    match poll(g.next()).expect("a step") {
        Some(s) => s.token,
        None => u32::MAX,
    }
}
