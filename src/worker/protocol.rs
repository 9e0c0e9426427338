//! Messages between the page (main thread) and the engine's Web Worker. How they cross
//! (structured values, floats as transferred `Float32Array`s, ids) is [`super::wire`]: the
//! worker answers a request with its `id`, so several widgets of one page can share one
//! worker and each get its own answers.

use crate::analysis::explain::{Explain, MapView};
use crate::analysis::position::{Experiment, ResultRow};
use crate::analysis::report::InspectReport;

/// Page → worker.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Fetch (through the Cache API) and load a model.
    LoadUrl {
        url: String,
        #[serde(default)]
        backend: BackendChoice,
    },
    /// Load the model whose bytes come with the message (a dropped or opened file).
    LoadBytes {
        name: String,
        #[serde(default)]
        backend: BackendChoice,
    },
    /// Tokenize and run `text`; return the report and the map of `layer.head`. The capture is
    /// kept under `slot` (one per widget of a page; the playground uses 0).
    Run {
        text: String,
        layer: usize,
        head: usize,
        max_side: usize,
        #[serde(default)]
        slot: u32,
        /// How the returned map is shown (a what-if, the sink hidden): the page gets the map it
        /// draws in the run's answer, not the plain one and then another.
        #[serde(default)]
        view: MapView,
    },
    /// The map of another head, or a zoomed region of it, from the last run of `slot`.
    Head {
        layer: usize,
        head: usize,
        max_side: usize,
        rows: Option<(usize, usize)>,
        cols: Option<(usize, usize)>,
        #[serde(default)]
        slot: u32,
        /// A what-if and/or the sink hidden (default: the map as the model computes it).
        #[serde(default)]
        view: MapView,
    },
    /// The exact rows of one head from the last run of `slot` (a long input's export: a run's
    /// result carries them only up to [`super::session::EXACT_ROWS_LIMIT`] tokens).
    Rows {
        layer: usize,
        head: usize,
        #[serde(default)]
        slot: u32,
    },
    /// One query's row in every head (layer-major) from the last run of `slot`: heads ranked
    /// by attention from that query to a chosen key, and the all-heads view's bars.
    QueryRows {
        query: usize,
        #[serde(default)]
        slot: u32,
    },
    /// One query row of one head, step by step, with the what-ifs (from the last run of `slot`).
    Explain {
        layer: usize,
        head: usize,
        query: usize,
        #[serde(default)]
        slot: u32,
    },
    /// Small pooled maps of every head of the last run of `slot` (the model view).
    Thumbs {
        side: usize,
        #[serde(default)]
        slot: u32,
    },
    /// Every head's pattern scores on the last run of `slot`.
    Heads {
        #[serde(default)]
        slot: u32,
    },
    /// Every pair of heads compared (JS distance), clustered, on the last run of `slot`.
    Similarity {
        #[serde(default)]
        slot: u32,
    },
    /// The last run of `slot` again with `heads` knocked out, compared with the plain pass; the
    /// knocked-out capture is kept under [`ablated_slot`]`(slot)` for maps.
    Ablate {
        heads: Vec<(usize, usize)>,
        #[serde(default)]
        slot: u32,
    },
    /// The last run of `slot` again with `what` changed inside the attention of `layers`
    /// (`all`, `L` or `A-B`), compared with the plain pass (at most
    /// [`super::session::ABLATION_POSITIONS`] predictions scored).
    WhatIf {
        what: crate::model::arch::AttnChange,
        layers: String,
        #[serde(default)]
        slot: u32,
    },
    /// Every head of the model knocked out alone on the last run of `slot`: Δ log p of the
    /// token after `query` (progress after each head; `Cancel` keeps the heads done).
    Effects {
        query: usize,
        #[serde(default)]
        slot: u32,
    },
    /// The logit lens of the last run of `slot`: what each layer would predict, at the last
    /// [`crate::analysis::lens::LENS_MAX_POSITIONS`] positions at most.
    Lens {
        #[serde(default)]
        slot: u32,
    },
    /// The induction diagnostic: `period` random ids (seeded) repeated twice, run and scored.
    Induction { period: usize, seed: u64 },
    /// `text` under each KV-cache policy (dense, the last `window` keys, `sinks` first keys
    /// plus that window, key 0 hidden): log p of every next token; at most
    /// [`STREAMING_MAX_TOKENS`] tokens are read.
    Streaming { text: String, window: usize, sinks: usize },
    /// Attention alone timed at n = 128, 256, … ≤ `max_n` on the CPU and (with a GPU) both
    /// GPU kernels; progress after every measurement, stopped by `Cancel`.
    Cost { max_n: usize },
    /// A lost-in-the-middle experiment; progress is posted after every trial.
    Experiment { experiment: Experiment },
    /// The model writes after `text` (or exactly after `ids`, a branch): first the prompt's
    /// run (a `Result`, like `Run`), then a `Token` per token written, then `Generated` and
    /// the run of prompt + output (a `Result`: every view works on the generated text). With
    /// `recompute` (the same steps without the cache: `forced` holds them) only `Token`s
    /// and `Generated` come, for their times.
    Generate {
        text: String,
        #[serde(default)]
        ids: Option<Vec<u32>>,
        max_tokens: usize,
        sampling: crate::generate::Sampling,
        /// Wrap the text in the model's own chat template first.
        #[serde(default)]
        chat: bool,
        #[serde(default)]
        forced: Vec<u32>,
        #[serde(default)]
        recompute: bool,
        layer: usize,
        head: usize,
        max_side: usize,
        #[serde(default)]
        slot: u32,
    },
    /// The model writes on, greedily, `max_tokens` tokens after `text` (its first
    /// [`STREAMING_MAX_TOKENS`] tokens; `None`: the run of `slot`) under each of `variants` (a
    /// cache policy, a what-if), one after the other: `Progress` ("writing") per token, and
    /// `Written` with every variant done so far after each. Stopped by `Cancel`.
    WriteOn {
        #[serde(default)]
        text: Option<String>,
        variants: Vec<crate::generate::Variant>,
        max_tokens: usize,
        #[serde(default)]
        slot: u32,
    },
    /// A word through the layers: the token `word` (or the positions given) in each of two
    /// texts, their residual vectors compared layer by layer.
    Vectors {
        a: String,
        b: String,
        #[serde(default)]
        word: String,
        #[serde(default)]
        at: (Option<usize>, Option<usize>),
    },
    /// Two texts side by side: both run, every head's change between them ranked, head
    /// `(layer, head)`'s map of each.
    Compare { a: String, b: String, layer: usize, head: usize, max_side: usize },
    /// One head's queries and keys of the run of `slot` as points on two axes.
    Qk {
        layer: usize,
        head: usize,
        #[serde(default)]
        slot: u32,
    },
    /// Stops a running experiment, sweep or generation after its current step (handled out
    /// of turn).
    Cancel,
}

/// Where the worker runs the model (`?backend=` on the page, `backend` on widgets). The
/// worker decides once, at its first model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// WebGPU on a hardware adapter that passes the self-check, else the CPU.
    #[default]
    Auto,
    /// WebGPU whatever the adapter (the CPU only when there is none, or it fails).
    Webgpu,
    Cpu,
}

impl BackendChoice {
    /// `webgpu`, `gpu` or `cpu`; anything else is `Auto`.
    pub fn parse(s: &str) -> BackendChoice {
        match s.trim().to_ascii_lowercase().as_str() {
            "webgpu" | "gpu" => BackendChoice::Webgpu,
            "cpu" => BackendChoice::Cpu,
            _ => BackendChoice::Auto,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Webgpu => "webgpu",
            BackendChoice::Cpu => "cpu",
        }
    }
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The worker is listening (messages sent before this would be lost).
    Ready,
    Progress { phase: String, done: f64, total: Option<f64> },
    Loaded { model: ModelSummary, backend: String, adapter: String, note: Option<String> },
    Result { run: Box<RunResult> },
    /// `exact_rows`: row i holds keys 0..=i (absent for zoomed regions and long inputs).
    Head { map: HeadMap, exact_rows: Option<Vec<Vec<f32>>> },
    Thumbs { thumbs: Vec<HeadMap> },
    /// Row i holds the probabilities of keys 0..=i.
    Rows { layer: usize, head: usize, rows: Vec<Vec<f32>> },
    /// `rows[layer * n_head + head]`: the query's row in that head.
    QueryRows { query: usize, rows: Vec<Vec<f32>> },
    Explain { explain: Box<Explain> },
    Heads { scores: Box<crate::analysis::heads::HeadScores> },
    /// `tokens`: the repeated sequence as text pieces; `maps`: the best-scoring heads' maps
    /// of the diagnostic's run, best first.
    Induction {
        induction: Box<crate::analysis::heads::Induction>,
        tokens: Vec<String>,
        #[serde(default)]
        maps: Vec<HeadMap>,
    },
    Similarity { similarity: Box<crate::analysis::heads::Similarity> },
    /// The texts of the tokens `lens` names (`lens.tokens` holds the text's own): `vocab` pairs
    /// every id of its top lists with its text, once.
    Lens { lens: Box<crate::analysis::lens::Lens>, vocab: Vec<(u32, String)> },
    /// The cache policies over a text, and its tokens' texts.
    Streaming { streaming: Box<crate::analysis::through_model::Streaming>, tokens: Vec<String> },
    /// The sweep's measurements (partial when `cancelled`); `gpu`: the adapter, when one ran.
    Cost { rows: Vec<crate::analysis::cost::CostRow>, cancelled: bool, gpu: Option<String> },
    /// `next`: the likeliest next tokens before or after, as (text, p before, p after);
    /// `changed`: the heads whose maps moved most, as (layer, head, largest |Δp| of a cell).
    Ablation { ablation: Box<crate::analysis::heads::Ablation>, tokens: Vec<String>, next: Vec<(String, f32, f32)>, changed: Vec<(usize, usize, f32)> },
    /// A what-if through the model compared with the plain pass (`comparison.heads` is empty),
    /// with the text's tokens and the likeliest next tokens as (text, p plain, p with it).
    WhatIf { what: crate::model::arch::AttnChange, layers: String, comparison: Box<crate::analysis::heads::Ablation>, tokens: Vec<String>, next: Vec<(String, f32, f32)> },
    /// Per head (layer, head, Δ log p of the token after `query`, `target`, when that head
    /// alone is knocked out); partial when `cancelled`.
    Effects { query: usize, target: String, effects: Vec<(usize, usize, f32)>, cancelled: bool },
    /// An experiment's results (partial when `cancelled`).
    Experiment { experiment: Experiment, rows: Vec<ResultRow>, cancelled: bool, elapsed_ms: f64 },
    /// The text is longer than a run can take: `n` tokens where `max` fit (`why` says what
    /// limits it); its first `max` tokens end at byte `keep_bytes` of the text (the page
    /// offers to cut there).
    TooLong { n: usize, max: usize, keep_bytes: usize, why: String },
    /// A token written (`t` = 0, 1, …; `ms`: the step that chose it, the prompt's prefill for
    /// t = 0), the cache's size after that step, and the selected head's map over every
    /// position read so far (absent with `recompute`).
    Token { t: usize, n_prompt: usize, token: GenToken, ms: f64, kv_cache_bytes: usize, map: Option<HeadMap> },
    /// The generation ended (see [`GenSummary::finish`]).
    Generated { generation: Box<GenSummary> },
    /// What the model wrote under each variant so far (`total` were asked for).
    Written { written: Vec<WrittenText>, total: usize, cancelled: bool },
    Vectors { vectors: Box<crate::analysis::vectors::WordVectors> },
    Qk { points: Box<crate::analysis::vectors::QkPoints> },
    Compare { compare: Box<crate::analysis::compare::TextCompare>, maps: Box<(HeadMap, HeadMap)> },
    /// A queued run that a later run of the same slot replaced before it started.
    Superseded,
    /// Something failed; `phase` says what was being done. The worker stays usable.
    Error { phase: String, message: String },
}

/// A token written, as the page shows it: its text, its probability, and the likeliest
/// alternatives at its step as (id, text, probability), the chosen one among them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenToken {
    pub id: u32,
    pub text: String,
    pub prob: f32,
    pub top: Vec<(u32, String, f32)>,
}

/// What the model wrote under one variant of [`Request::WriteOn`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WrittenText {
    pub variant: crate::generate::Variant,
    /// [`crate::generate::Variant::name`].
    pub name: String,
    pub tokens: Vec<GenToken>,
    pub text_out: String,
    /// Keys the last token's query read in each layer (a layer's own window aside).
    pub keys_read: usize,
    /// Every step read the whole text again (no causal mask: no cache can hold the keys).
    pub recompute: bool,
}

impl WrittenText {
    /// The first token where this row departs from `first` (`None`: the same tokens).
    pub fn departs_from(&self, first: &WrittenText) -> Option<usize> {
        let n = self.tokens.len().max(first.tokens.len());
        (0..n).find(|&t| self.tokens.get(t).map(|x| x.id) != first.tokens.get(t).map(|x| x.id))
    }
}

/// What a generation wrote and how long each step took.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenSummary {
    /// The prompt's ids (the chat template applied, when asked).
    pub ids: Vec<u32>,
    pub generated: Vec<u32>,
    pub text_out: String,
    pub steps: Vec<GenToken>,
    pub timings_ms: crate::generate::GenTimings,
    pub kv_cache_bytes: usize,
    pub finish: crate::generate::Finish,
    pub backend: String,
    pub recompute: bool,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSummary {
    /// `general.name` as the file writes it.
    pub name: String,
    /// The name readers know ("SmolLM2-135M-Instruct"): what the page shows.
    #[serde(default)]
    pub display_name: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub context_length: usize,
    pub file_bytes: usize,
    /// `general.architecture` ("llama", "gemma3").
    #[serde(default)]
    pub architecture: String,
    /// Per layer: the sliding window (`None`: global, full causal attention).
    #[serde(default)]
    pub layer_window: Vec<Option<usize>>,
    /// Sizes for the cost-of-attention counts.
    #[serde(default)]
    pub dims: Option<crate::analysis::cost::Dims>,
    /// The file carries a chat template (an instruct model): Chat can be offered.
    #[serde(default)]
    pub chat: bool,
}

/// A head's map, or a region of it, possibly max-pooled. Cells above the causal diagonal
/// hold [`MASKED`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadMap {
    pub layer: usize,
    pub head: usize,
    pub n_tokens: usize,
    /// Query rows `rows.0 .. rows.1` and keys `cols.0 .. cols.1` of the full map.
    pub rows: (usize, usize),
    pub cols: (usize, usize),
    /// Cells per side and tokens per cell.
    pub side_q: usize,
    pub side_k: usize,
    pub block_q: usize,
    pub block_k: usize,
    /// (side_q, side_k), row-major.
    pub values: Vec<f32>,
    /// The layer's sliding window (keys older than `i + 1 - window` get exactly 0).
    #[serde(default)]
    pub window: Option<usize>,
}

/// The longest text the cache policies are compared on in the browser (four passes of it).
pub const STREAMING_MAX_TOKENS: usize = 2048;

/// Most tokens of each text a word's vectors are read from (two passes of a page's worker).
pub const VECTORS_MAX_TOKENS: usize = 2048;

/// Where a slot's knocked-out capture is kept (maps under the knock-out).
pub const fn ablated_slot(slot: u32) -> u32 {
    slot | 1 << 31
}

/// Marks cells the causal mask hides.
pub const MASKED: f32 = -1.0;

/// Which part of a head's map of `n` tokens to draw and how finely: query rows `rows`, keys
/// `cols` (each clipped to `0..n`, at least one wide), at most `max_side` cells a side (1 ..=
/// [`super::session::MAX_SIDE`]).
#[derive(Debug, Clone, Copy)]
pub struct MapRegion {
    pub n: usize,
    pub rows: (usize, usize),
    pub cols: (usize, usize),
    pub max_side: usize,
}

impl MapRegion {
    /// The whole map.
    pub fn whole(n: usize, max_side: usize) -> Self {
        MapRegion { n, rows: (0, n), cols: (0, n), max_side }
    }
}

impl HeadMap {
    pub fn pooled(&self) -> bool {
        self.block_q > 1 || self.block_k > 1
    }

    /// The one map builder. Each cell is the largest probability of its block of rows × keys
    /// (exact when a block is one cell); cells no row reaches are [`MASKED`]. Only the rows
    /// `read` lists are visited (all of the region's; thumbnails sample), and `fill(i, row)`
    /// writes row i (keys `0..row.len()`: `i + 1` causal, n with the mask removed), false when
    /// there is none.
    pub fn build(layer: usize, head: usize, region: MapRegion, window: Option<usize>, read: impl IntoIterator<Item = usize>, mut fill: impl FnMut(usize, &mut Vec<f32>) -> bool) -> HeadMap {
        let n = region.n;
        let max_side = region.max_side.clamp(1, super::session::MAX_SIDE);
        let clip = |(a, b): (usize, usize)| (a.min(n), b.min(n).max(a.min(n) + 1).min(n));
        let ((r0, r1), (c0, c1)) = (clip(region.rows), clip(region.cols));
        let (bq, bk) = ((r1 - r0).div_ceil(max_side).max(1), (c1 - c0).div_ceil(max_side).max(1));
        let (sq, sk) = ((r1 - r0).div_ceil(bq), (c1 - c0).div_ceil(bk));
        let mut values = vec![MASKED; sq * sk];
        let mut row = Vec::new();
        for i in read.into_iter().filter(|i| (r0..r1).contains(i)) {
            if !fill(i, &mut row) {
                continue;
            }
            for j in c0..c1.min(row.len()) {
                let cell = &mut values[((i - r0) / bq) * sk + (j - c0) / bk];
                *cell = cell.max(row[j]);
            }
        }
        HeadMap { layer, head, n_tokens: n, rows: (r0, r1), cols: (c0, c1), side_q: sq, side_k: sk, block_q: bq, block_k: bk, values, window }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
    /// `attention` holds the exact rows of the selected head only, and only up to
    /// [`super::session::EXACT_ROWS_LIMIT`] tokens (longer inputs: ask with `Request::Rows`).
    pub report: InspectReport,
    pub map: HeadMap,
    /// Per layer: mean over heads of the sink mass on key 0.
    pub sink_per_layer: Vec<f32>,
    /// What a query spreading evenly would give key 0, averaged like the sink mass:
    /// mean over rows i = 1..n−1 of 1/(i+1).
    pub sink_uniform_baseline: f32,
    /// The likeliest next tokens after the text: (decoded text, probability).
    pub next_tokens: Vec<(String, f32)>,
    /// The worker's WebAssembly memory after the run, in bytes (browser only).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ids: &[u32]) -> WrittenText {
        let tokens = ids.iter().map(|&id| GenToken { id, text: id.to_string(), prob: 0.5, top: vec![] }).collect();
        WrittenText { variant: crate::generate::Variant::default(), name: format!("{ids:?}"), tokens, text_out: String::new(), keys_read: 1, recompute: false }
    }

    #[test]
    fn a_written_row_departs_at_its_first_different_token() {
        let first = row(&[1, 2, 3]);
        assert_eq!(row(&[1, 2, 3]).departs_from(&first), None);
        assert_eq!(row(&[1, 5, 3]).departs_from(&first), Some(1));
        assert_eq!(row(&[1, 2]).departs_from(&first), Some(2), "a shorter row departs where it ends");
    }
}
