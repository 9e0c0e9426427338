//! What the engine worker does with each request, independent of the browser: it holds the
//! model and the last run's attention capture and answers from them. The wasm runtime
//! (`runtime.rs`) only moves messages, bytes and GPU futures around this.

use crate::analysis::explain::MapView;
use crate::analysis::report::{build_report, HeadSelection};
use crate::model::capture::AttentionTrace;
use crate::backends::{EngineError, ForwardOutput};
use crate::model::tokenizer::Token;
use crate::Model;
use std::sync::Arc;

use super::protocol::{HeadMap, MapRegion, ModelSummary, Response, RunResult};

/// Largest map side sent to the page (a canvas cell per value).
pub const MAX_SIDE: usize = 512;
/// Inputs up to this many tokens also get their selected head's exact rows (for export).
pub const EXACT_ROWS_LIMIT: usize = 2048;

/// Captures kept at once (one per widget slot); the oldest is dropped past this many, or
/// when the kept captures together exceed [`KEPT_TOKENS`] tokens.
pub const KEPT_SLOTS: usize = 16;
/// About 92 KB of capture per token for SmolLM2: 4096 tokens ≈ 380 MB.
pub const KEPT_TOKENS: usize = 4096;

/// A knock-out scores at most this many predictions (the last ones): each needs a row of
/// logits (vocabulary × 4 bytes, ~200 KB for SmolLM2).
pub const ABLATION_POSITIONS: usize = 1024;

/// Key terms per pair of heads the page's similarity matrix may cost (~36 000 pairs for
/// SmolLM2, ~2 s natively): every row up to ~140 tokens, evenly spaced rows beyond.
pub const SIMILARITY_BUDGET: usize = 10_000;

/// WebAssembly (wasm32) memory ends at 4 GiB: the model, the kept captures, the forward
/// pass's scratch and the new capture must all fit below it.
/// (u64: 4 GiB itself does not fit in wasm32's `usize`.)
pub const WASM_MEMORY: u64 = 4 << 30;
/// The largest model file the browser takes: it is copied into WebAssembly memory and must
/// leave room to run.
pub const MAX_MODEL_FILE: u64 = 3 << 30;
/// What the rest of the worker (allocator slack, messages, the page's copies) may need.
const WASM_HEADROOM: u64 = 384 << 20;

/// The forward pass's working memory at `n` tokens besides the capture: the residual stream
/// and its normed copy, q/k/v, the attention output and the feed-forward's three (n, n_ff)
/// activations (f32).
pub fn scratch_bytes(c: &crate::model::Config, n: usize) -> usize {
    let per_token = 4 * c.n_embd + (c.n_head + 2 * c.n_head_kv) * c.head_dim + 3 * c.n_ff;
    n.saturating_mul(per_token).saturating_mul(4)
}

pub struct Session {
    /// Shared with the forward pass in flight (the worker holds no borrow across it).
    pub model: Arc<Model>,
    /// The last run's capture of each slot, oldest first.
    traces: Vec<(u32, AttentionTrace)>,
    /// The token ids of each kept run.
    ids: Vec<(u32, Vec<u32>)>,
}

pub fn summary(model: &Model) -> ModelSummary {
    let c = &model.config;
    ModelSummary {
        name: model.info.name.clone(),
        display_name: model.info.display_name.clone(),
        n_layer: c.n_layer,
        n_head: c.n_head,
        n_kv_head: c.n_head_kv,
        context_length: c.context_length,
        file_bytes: model.info.file_bytes,
        architecture: c.arch.clone(),
        layer_window: c.layer_window.clone(),
        dims: Some(crate::analysis::cost::Dims::of(c)),
        chat: crate::model::chat::has_chat(model),
    }
}

fn error(phase: &str, e: impl std::fmt::Display) -> Response {
    Response::Error { phase: phase.into(), message: e.to_string() }
}

impl Session {
    pub fn new(model: Model) -> Self {
        Session { model: Arc::new(model), traces: Vec::new(), ids: Vec::new() }
    }

    fn trace(&self, slot: u32) -> Option<&AttentionTrace> {
        self.traces.iter().find(|(s, _)| *s == slot).map(|(_, t)| t)
    }

    /// Keeps `trace` as the capture of `slot`, dropping the oldest others past the limits.
    fn keep(&mut self, slot: u32, trace: AttentionTrace, ids: Vec<u32>) {
        self.traces.retain(|(s, _)| *s != slot);
        self.traces.push((slot, trace));
        while self.traces.len() > 1 && (self.traces.len() > KEPT_SLOTS || self.traces.iter().map(|(_, t)| t.n_tokens).sum::<usize>() > KEPT_TOKENS) {
            self.traces.remove(0);
        }
        self.ids.retain(|(s, _)| *s != slot);
        self.ids.push((slot, ids));
        let traces = &self.traces;
        self.ids.retain(|(s, _)| traces.iter().any(|(t, _)| t == s));
    }

    /// Bytes held by the kept captures of slots other than `slot` (and its knock-out).
    fn kept_bytes_besides(&self, slot: u32) -> usize {
        let c = &self.model.config;
        self.traces.iter().filter(|(s, _)| *s != slot && *s != super::protocol::ablated_slot(slot)).map(|(_, t)| AttentionTrace::bytes_for(c, t.n_tokens)).sum()
    }

    /// Checks that a run of `toks` can go ahead and gives its forward options. Too many tokens
    /// for the model, or (in the browser, `wasm`) for the memory left, is refused with the
    /// limit and where to cut the text ([`Response::TooLong`]); otherwise the slot's previous
    /// capture is released first, so the new one does not sit beside it.
    pub fn prepare_run(&mut self, slot: u32, toks: &[Token], wasm: bool) -> Result<crate::backends::ForwardOptions, Response> {
        let c = &self.model.config;
        let n = toks.len();
        if n == 0 {
            return Err(error("run", crate::backends::EngineError::EmptyInput));
        }
        let cut = |max: usize, why: String| Response::TooLong { n, max, keep_bytes: toks[max.clamp(1, n) - 1].end, why };
        if n > c.context_length {
            return Err(cut(c.context_length, format!("this model reads at most {} tokens", c.context_length)));
        }
        let mut opts = crate::analysis::report::report_forward_options();
        let per_token = AttentionTrace::bytes_for(c, 1) + scratch_bytes(c, 1);
        let capture = AttentionTrace::bytes_for(c, n);
        if wasm {
            let held = (self.model.info.file_bytes + self.kept_bytes_besides(slot)) as u64 + WASM_HEADROOM;
            let left = WASM_MEMORY.saturating_sub(held);
            let need = (capture as u64).saturating_add(scratch_bytes(c, n) as u64);
            if need > left {
                let max = (left / per_token.max(1) as u64) as usize;
                return Err(cut(max, format!("its attention capture and working memory need {} MiB, and this browser tab's WebAssembly memory (4096 MiB) has {} MiB left beside the model and the kept runs: {} tokens fit", need >> 20, left >> 20, max)));
            }
            opts.capture_budget_bytes = left.min(usize::MAX as u64) as usize;
        }
        if capture > opts.capture_budget_bytes {
            let max = opts.capture_budget_bytes / AttentionTrace::bytes_for(c, 1).max(1);
            return Err(cut(max, format!("capturing its attention needs {} MiB, more than the {} MiB allowed: {} tokens fit", capture >> 20, opts.capture_budget_bytes >> 20, max)));
        }
        self.traces.retain(|(s, _)| *s != slot && *s != super::protocol::ablated_slot(slot));
        Ok(opts)
    }

    /// A prompt's tokens followed by generated ids, with the text they make: the generated
    /// tokens' spans are where each one's decoded text ends.
    pub fn extend_text(&self, text: &str, prompt: &[Token], generated: &[u32]) -> (String, Vec<Token>) {
        let tok = &self.model.tokenizer;
        let full = format!("{text}{}", tok.decode(generated).unwrap_or_default());
        let mut toks = prompt.to_vec();
        let mut start = prompt.last().map_or(0, |p| p.end);
        for t in 0..generated.len() {
            let end = (text.len() + tok.decode(&generated[..=t]).map_or(0, |s| s.len())).clamp(start, full.len());
            toks.push(Token { id: generated[t], start, end });
            start = end;
        }
        (full, toks)
    }

    /// Tokens of `text` (the worker then runs the forward pass on its backend).
    pub fn tokenize(&self, text: &str) -> Vec<Token> {
        self.model.tokenizer.encode_with_spans(text)
    }

    /// Builds the page's result from a finished forward pass and keeps its capture.
    pub fn finish_run(&mut self, slot: u32, text: &str, toks: &[Token], out: ForwardOutput, backend_name: &str, layer: usize, head: usize, max_side: usize, tokenize_ms: f64, forward_ms: f64) -> Response {
        let c = &self.model.config;
        let (layer, head) = (layer.min(c.n_layer - 1), head.min(c.n_head - 1));
        // Exact rows only where the page can use them whole; a long input's view asks for
        // regions (zoom) or, to export, for the rows (`rows`).
        let exported = if toks.len() <= EXACT_ROWS_LIMIT { vec![(layer, head)] } else { vec![] };
        let mut report = match build_report(&self.model, text, toks, &out, &HeadSelection::List(exported), tokenize_ms, forward_ms) {
            Ok(r) => r,
            Err(e) => return error("analysis", e),
        };
        report.backend = backend_name.to_string();
        let Some(trace) = out.trace else { return error("analysis", "the forward pass kept no attention capture") };
        let n = trace.n_tokens;
        let sink_per_layer = crate::analysis::report::sink_per_layer(&report.sink_mass_key0);
        let sink_uniform_baseline = crate::analysis::report::uniform_baseline(n);
        let map = match head_map(&trace, layer, head, max_side, None, None) {
            Ok(m) => m,
            Err(e) => return error("analysis", e),
        };
        // A knock-out of the previous text no longer applies.
        self.traces.retain(|(s, _)| *s != super::protocol::ablated_slot(slot));
        self.keep(slot, trace, report.ids.clone());
        let next_tokens = report.last_logits_top.iter().take(8).map(|(id, l)| (self.model.tokenizer.token_text(*id), (l - report.last_logsumexp).exp())).collect();
        Response::Result { run: Box::new(RunResult { report, map, sink_per_layer, sink_uniform_baseline, next_tokens, memory_bytes: None }) }
    }

    /// The exact rows of one head from the last run of `slot` (for an export).
    pub fn rows(&self, slot: u32, layer: usize, head: usize) -> Response {
        let Some(t) = self.trace(slot) else { return error("export", "run a text first") };
        match t.head_rows(layer, head) {
            Ok(rows) => Response::Rows { layer, head, rows },
            Err(e) => error("export", e),
        }
    }

    /// One query's row in every head.
    pub fn query_rows(&self, slot: u32, query: usize) -> Response {
        let Some(t) = self.trace(slot) else { return error("heads", "run a text first") };
        match t.query_rows(query) {
            Ok(rows) => Response::QueryRows { query, rows },
            Err(e) => error("heads", e),
        }
    }

    /// One query row explained (ids and tokens of the run included).
    pub fn explain(&self, slot: u32, layer: usize, head: usize, query: usize) -> Response {
        let Some(t) = self.trace(slot) else { return error("explain", "run a text first") };
        let Some(ids) = self.ids.iter().find(|(s, _)| *s == slot).map(|(_, ids)| ids.clone()) else { return error("explain", "run a text first") };
        match crate::analysis::explain::explain(t, layer, head, query) {
            Ok(mut e) => {
                e.tokens = ids.iter().map(|&id| self.model.tokenizer.token_text(id)).collect();
                e.ids = ids;
                Response::Explain { explain: Box::new(e) }
            }
            Err(e) => error("explain", e),
        }
    }

    /// Every head's pattern scores on the last run of `slot`.
    pub fn heads(&self, slot: u32) -> Response {
        let Some(t) = self.trace(slot) else { return error("heads", "run a text first") };
        let mut s = crate::analysis::heads::head_scores(t, false);
        if let Some((_, ids)) = self.ids.iter().find(|(s, _)| *s == slot) {
            s.tokens = ids.iter().map(|&id| self.model.tokenizer.token_text(id)).collect();
            s.ids = ids.clone();
        }
        Response::Heads { scores: Box::new(s) }
    }

    /// Every pair of heads compared and clustered (exact: every row of every head).
    pub fn similarity(&self, slot: u32) -> Response {
        let Some(t) = self.trace(slot) else { return error("similarity", "run a text first") };
        use crate::analysis::heads::{head_scores, js_matrix_of, similarity_over, similarity_rows};
        let rows = similarity_rows(t.n_tokens, SIMILARITY_BUDGET);
        let mut s = head_scores(t, false);
        s.js_distance = Some(js_matrix_of(t, &rows));
        match similarity_over(&s, t.n_head, Some((rows.len(), t.n_tokens.saturating_sub(1)))) {
            Some(sim) => Response::Similarity { similarity: Box::new(sim) },
            None => error("similarity", "no distances were computed"),
        }
    }

    /// Head `(layer, head)`'s queries and keys of the run of `slot` as points.
    pub fn qk(&self, slot: u32, layer: usize, head: usize) -> Response {
        let Some(t) = self.trace(slot) else { return error("queries and keys", "run a text first") };
        let Some(ids) = self.run_ids(slot) else { return error("queries and keys", "run a text first") };
        let tokens: Vec<String> = ids.iter().map(|&id| self.model.tokenizer.token_text(id)).collect();
        match crate::analysis::vectors::qk_points(t, &tokens, layer, head) {
            Ok(points) => Response::Qk { points: Box::new(points) },
            Err(e) => error("queries and keys", e),
        }
    }

    /// The token ids of the last run of `slot`.
    pub fn run_ids(&self, slot: u32) -> Option<Vec<u32>> {
        self.ids.iter().find(|(s, _)| *s == slot).map(|(_, ids)| ids.clone())
    }

    /// Compares the plain pass (`before`) with the knock-out of `heads` (`after`, run with
    /// [`ablation_options`] and a capture, kept for maps).
    pub fn finish_ablation(&mut self, slot: u32, heads: &[(usize, usize)], before: &ForwardOutput, after: ForwardOutput) -> Response {
        use crate::analysis::heads::{compare, Predictions};
        let Some(ids) = self.run_ids(slot) else { return error("knock-out", "run a text first") };
        if before.logits.nrows() == 0 || after.logits.nrows() == 0 {
            return error("knock-out", "the passes kept no logits");
        }
        let (pb, pa) = (Predictions::of(&ids, before), Predictions::of(&ids, &after));
        let ablation = compare(&ids, heads, &pb, &pa);
        let (tokens, next) = self.in_words(&ids, &ablation, &pb, &pa);
        let mut changed = vec![];
        if let Some(trace) = after.trace {
            if let Some(plain) = self.trace(slot) {
                changed = most_changed(plain, &trace, 6);
            }
            self.keep(super::protocol::ablated_slot(slot), trace, ids);
        }
        Response::Ablation { ablation: Box::new(ablation), tokens, next, changed }
    }

    /// The text's tokens and the likeliest next tokens before or after a change, as (text,
    /// p before, p after), likeliest first.
    fn in_words(&self, ids: &[u32], c: &crate::analysis::heads::Ablation, pb: &crate::analysis::heads::Predictions, pa: &crate::analysis::heads::Predictions) -> (Vec<String>, Vec<(String, f32, f32)>) {
        let tok = &self.model.tokenizer;
        let probs = |l: &[f32]| -> Vec<f32> {
            let z = crate::analysis::report::log_sum_exp(l);
            l.iter().map(|v| (v - z).exp()).collect()
        };
        let (b, a) = (probs(&pb.last), probs(&pa.last));
        let mut next: Vec<u32> = c.last_logits_top_before.iter().take(8).chain(c.last_logits_top.iter().take(8)).map(|(id, _)| *id).collect();
        next.sort_by(|x, y| b[*y as usize].max(a[*y as usize]).total_cmp(&b[*x as usize].max(a[*x as usize])));
        next.dedup();
        let next = next.into_iter().map(|id| (tok.token_text(id), b[id as usize], a[id as usize])).collect();
        (ids.iter().map(|&id| tok.token_text(id)).collect(), next)
    }

    /// A what-if through the model (the passes of [`crate::flows::whatif`]) compared with the
    /// plain pass of the run of `slot`.
    pub fn finish_whatif(&self, slot: u32, what: crate::model::arch::AttnChange, layers: &str, before: &ForwardOutput, after: &ForwardOutput) -> Response {
        use crate::analysis::heads::{compare, Predictions};
        let Some(ids) = self.run_ids(slot) else { return error("what-if", "run a text first") };
        if before.logits.nrows() == 0 || after.logits.nrows() == 0 {
            return error("what-if", "the passes kept no logits");
        }
        let (pb, pa) = (Predictions::of(&ids, before), Predictions::of(&ids, after));
        let comparison = compare(&ids, &[], &pb, &pa);
        let (tokens, next) = self.in_words(&ids, &comparison, &pb, &pa);
        Response::WhatIf { what, layers: layers.to_string(), comparison: Box::new(comparison), tokens, next }
    }

    /// The `k` best heads' maps of an induction run, best first.
    pub fn induction_maps(t: &AttentionTrace, grid: &crate::analysis::heads::Grid, k: usize) -> Vec<HeadMap> {
        crate::analysis::heads::ranked(grid).into_iter().take(k).filter_map(|(l, h, _)| head_map(t, l, h, 128, None, None).ok()).collect()
    }

    /// A head's map under a what-if and/or with the sink hidden (exact rows, then pooled).
    pub fn head_view(&self, slot: u32, layer: usize, head: usize, max_side: usize, rows: Option<(usize, usize)>, cols: Option<(usize, usize)>, view: MapView) -> Response {
        if view.is_plain() {
            return self.head(slot, layer, head, max_side, rows, cols);
        }
        let Some(t) = self.trace(slot) else { return error("map", "run a text first") };
        match crate::analysis::explain::map_rows(t, layer, head, &view) {
            Ok(all) => {
                let n = t.n_tokens;
                let (r, c) = (rows.unwrap_or((0, n)), cols.unwrap_or((0, n)));
                let region = MapRegion { n, rows: r, cols: c, max_side };
                let map = HeadMap::build(layer, head, region, t.windows.get(layer).copied().flatten(), 0..n, |i, row| {
                    row.clone_from(&all[i]);
                    true
                });
                // Exports stay the model's own numbers whatever the view shows.
                let exact_rows = (rows.is_none() && cols.is_none() && n <= EXACT_ROWS_LIMIT).then(|| t.head_rows(layer, head).ok()).flatten();
                Response::Head { map, exact_rows }
            }
            Err(e) => error("map", e),
        }
    }

    /// A head (or a region of it) from the last run of `slot`.
    pub fn head(&self, slot: u32, layer: usize, head: usize, max_side: usize, rows: Option<(usize, usize)>, cols: Option<(usize, usize)>) -> Response {
        match self.trace(slot) {
            None => error("map", "run a text first"),
            Some(t) => match head_map(t, layer, head, max_side, rows, cols) {
                Ok(map) => {
                    // Exact rows for export (`window.attnlab.exportJson`), unless the input is long.
                    let exact_rows = (rows.is_none() && cols.is_none() && t.n_tokens <= EXACT_ROWS_LIMIT).then(|| t.head_rows(layer, head).ok()).flatten();
                    Response::Head { map, exact_rows }
                }
                Err(e) => error("map", e),
            },
        }
    }

    /// Every head pooled to at most `side` cells a side, from at most 2·side sampled query
    /// rows (exact values; sampling keeps long inputs fast on one CPU thread).
    pub fn thumbs(&self, slot: u32, side: usize) -> Response {
        let Some(t) = self.trace(slot) else { return error("thumbnails", "run a text first") };
        let side = side.clamp(1, 64);
        let n = t.n_tokens;
        let sample_every = n.div_ceil(2 * side).max(1);
        let mut thumbs = Vec::with_capacity(t.n_layer * t.n_head);
        for layer in 0..t.layers.len() {
            for head in 0..t.n_head {
                let sampled = (0..n).step_by(sample_every).chain(std::iter::once(n - 1));
                thumbs.push(HeadMap::build(layer, head, MapRegion::whole(n, side), t.windows.get(layer).copied().flatten(), sampled, |i, row| fill_row(t, layer, head, i, row)));
            }
        }
        Response::Thumbs { thumbs }
    }
}

/// The `k` heads whose attention moved most between two captures of the same ids, as
/// (layer, head, largest |Δp| over every cell), largest first.
pub fn most_changed(a: &AttentionTrace, b: &AttentionTrace, k: usize) -> Vec<(usize, usize, f32)> {
    let mut all = vec![];
    for l in 0..a.n_layer.min(b.n_layer) {
        for h in 0..a.n_head {
            let mut most = 0f32;
            for i in 0..a.n_tokens.min(b.n_tokens) {
                if let (Ok(x), Ok(y)) = (a.row(l, h, i), b.row(l, h, i)) {
                    most = x.iter().zip(&y).fold(most, |m, (p, q)| m.max((p - q).abs()));
                }
            }
            all.push((l, h, most));
        }
    }
    all.sort_by(|x, y| y.2.total_cmp(&x.2));
    all.truncate(k);
    all
}

/// Row `i` of a head from the capture into `row` (false past the last token).
fn fill_row(t: &AttentionTrace, layer: usize, head: usize, i: usize, row: &mut Vec<f32>) -> bool {
    match t.row(layer, head, i) {
        Ok(r) => {
            *row = r;
            true
        }
        Err(_) => false,
    }
}

/// The map of one head: exact when it fits `max_side`, max-pooled otherwise; a region of it
/// when `rows` / `cols` say so (an empty region is an error).
pub fn head_map(t: &AttentionTrace, layer: usize, head: usize, max_side: usize, rows: Option<(usize, usize)>, cols: Option<(usize, usize)>) -> Result<HeadMap, crate::model::capture::AnalysisError> {
    let n = t.n_tokens;
    let (rows, cols) = (rows.unwrap_or((0, n)), cols.unwrap_or((0, n)));
    t.row(layer, head, 0)?; // checks layer and head
    if rows.0.min(n) >= rows.1.min(n) || cols.0.min(n) >= cols.1.min(n) {
        return Err(crate::model::capture::AnalysisError::BadQuery(rows.0, n));
    }
    let region = MapRegion { n, rows, cols, max_side };
    Ok(HeadMap::build(layer, head, region, t.windows.get(layer).copied().flatten(), rows.0..rows.1, |i, row| fill_row(t, layer, head, i, row)))
}

/// A run on the CPU, natively: what the worker's `run` does minus the browser (tests drive
/// the session with it; the worker itself goes through `backends::engine::Engine`).
#[cfg(any(test, feature = "test-support"))]
pub fn run_on_cpu(session: &mut Session, slot: u32, text: &str, layer: usize, head: usize, max_side: usize) -> Response {
    use crate::backends::{cpu::CpuBackend, Backend};
    use crate::util::Clock;
    let clock = Clock::start();
    let toks = session.tokenize(text);
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    let tokenize_ms = clock.ms();
    let opts = match session.prepare_run(slot, &toks, false) {
        Ok(o) => o,
        Err(refusal) => return refusal,
    };
    match CpuBackend::new().forward(&session.model, &ids, &opts) {
        Ok(out) => {
            let forward_ms = clock.ms() - tokenize_ms;
            session.finish_run(slot, text, &toks, out, "cpu", layer, head, max_side, tokenize_ms, forward_ms)
        }
        Err(e) => error("run", e),
    }
}

impl From<EngineError> for Response {
    fn from(e: EngineError) -> Self {
        error("run", e)
    }
}
