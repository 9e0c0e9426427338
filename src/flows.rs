//! The engine's long flows, written once for every host: a knock-out, the induction
//! diagnostic, the lost-in-the-middle experiment and the cost sweep. The browser worker, the
//! CLI and the tests call these same async functions (natively through `pollster`); each runs
//! its forward passes on an [`Engine`] (GPU first, the CPU when the GPU fails) and tells a
//! [`Progress`] how far it got, which also says when to stop.
//!
//! Layering: below the worker, the app and the CLI; above the backends and the analysis.

use std::future::Future;

use crate::analysis::cost::{cpu_row, gpu_row, shape, sweep_sizes, CostRow};
use crate::analysis::heads::{ablation_options, induction_grid, random_ids, Induction};
use crate::analysis::position::{summarise, Experiment, Prepared, ResultRow};
use crate::backends::engine::Engine;
use crate::backends::{EngineError, ForwardOptions, ForwardOutput, LogitsFor};
use crate::model::capture::AttentionTrace;
use crate::model::Model;

/// Where a flow reports and learns to stop.
pub trait Progress {
    /// `done` of `total` steps of `phase` are finished.
    fn step(&self, phase: &str, done: f64, total: Option<f64>);
    /// The engine left the GPU during the flow: why, once.
    fn note(&self, _note: &str) {}
    /// Whether to stop now (Cancel pressed, or another model loaded).
    fn cancelled(&self) -> bool {
        false
    }
    /// A pause between steps where the host handles its other events (the browser worker
    /// yields to its event loop here, so that a Cancel can arrive).
    fn pause(&self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

/// Reports nothing and never stops.
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _: &str, _: f64, _: Option<f64>) {}
}

/// A sweep's rows so far, and whether it was stopped before the end.
#[derive(Debug, Clone)]
pub struct Swept<T> {
    pub rows: Vec<T>,
    pub cancelled: bool,
}

async fn forward(engine: &Engine, model: &Model, ids: &[u32], opts: &ForwardOptions, progress: &impl Progress) -> Result<ForwardOutput, EngineError> {
    let out = engine.forward_async(model, ids, opts).await;
    if let Some(note) = engine.take_note() {
        progress.note(&note);
    }
    out
}

/// A text's pass before and after knocking `heads` out: logits at up to `max_positions`
/// positions (all with `None`); the second pass keeps its capture (the maps after).
pub async fn ablation(engine: &Engine, model: &Model, ids: &[u32], heads: &[(usize, usize)], max_positions: Option<usize>, progress: &impl Progress) -> Result<(ForwardOutput, ForwardOutput), EngineError> {
    let n = ids.len();
    progress.step("knock-out", 0.0, Some(2.0));
    let before = forward(engine, model, ids, &ablation_options(n, &[], false, max_positions), progress).await?;
    progress.step("knock-out", 1.0, Some(2.0));
    let after = forward(engine, model, ids, &ablation_options(n, heads, true, max_positions), progress).await?;
    Ok((before, after))
}

/// Attention is not the effect: for each head of `heads` knocked out alone, how much the
/// log-probability of the token after `query` (ids[query + 1]) changes (Δ log p, after minus
/// plain; negative: the model needed that head). One pass per head, after the plain one;
/// stops early (keeping the heads done) when `progress` says so.
pub async fn head_effects(engine: &Engine, model: &Model, ids: &[u32], query: usize, heads: &[(usize, usize)], progress: &impl Progress) -> Result<Swept<(usize, usize, f32)>, String> {
    let Some(&target) = ids.get(query + 1) else { return Err(format!("token {query} is the last one: there is no next token to predict")) };
    let logp = |out: &ForwardOutput| -> Result<f32, String> {
        let row = out.logits_at(query).ok_or("the pass kept no logits")?;
        let row: Vec<f32> = row.to_vec();
        Ok(row[target as usize] - crate::analysis::report::log_sum_exp(&row))
    };
    let opts = |ablate: Vec<(usize, usize)>| ForwardOptions { capture_attention: false, logits_for: LogitsFor::Positions(vec![query]), ablate, ..Default::default() };
    let total = heads.len() as f64 + 1.0;
    progress.step("effects", 0.0, Some(total));
    let plain = logp(&forward(engine, model, ids, &opts(vec![]), progress).await.map_err(|e| e.to_string())?)?;
    let mut rows = vec![];
    for &(l, h) in heads {
        progress.pause().await;
        if progress.cancelled() {
            return Ok(Swept { rows, cancelled: true });
        }
        let after = logp(&forward(engine, model, ids, &opts(vec![(l, h)]), progress).await.map_err(|e| e.to_string())?)?;
        rows.push((l, h, after - plain));
        progress.step("effects", rows.len() as f64 + 1.0, Some(total));
    }
    Ok(Swept { rows, cancelled: false })
}

/// The plain pass and the pass with `what` inside the attention of layers `first..=last`,
/// each scoring the last `max_positions` predictions at most.
pub async fn whatif(engine: &Engine, model: &Model, ids: &[u32], what: crate::model::arch::AttnChange, (first, last): (usize, usize), max_positions: Option<usize>, progress: &impl Progress) -> Result<(ForwardOutput, ForwardOutput), EngineError> {
    let opts = ForwardOptions { capture_attention: false, logits_for: crate::analysis::heads::prediction_logits(ids.len(), max_positions), ..Default::default() };
    progress.step("what-if", 0.0, Some(2.0));
    let before = forward(engine, model, ids, &opts, progress).await?;
    progress.step("what-if", 1.0, Some(2.0));
    progress.pause().await;
    let after = forward(engine, model, ids, &ForwardOptions { change: Some((what, first, last)), ..opts }, progress).await?;
    Ok((before, after))
}

/// What the model writes after `ids` under each of `variants` (a cache policy, a what-if):
/// greedy, `max_tokens` tokens each, past the end-of-text token, one generation after the
/// other on the engine's GPU when it has one (the CPU when it fails, said once). `on_written`
/// hears each variant's generation as it ends; stops between tokens when `progress` says so
/// (the variant under way is then dropped).
pub async fn write_on(engine: &Engine, model: &Model, ids: &[u32], variants: &[crate::generate::Variant], max_tokens: usize, progress: &impl Progress, mut on_written: impl FnMut(usize, crate::generate::Generation)) -> Result<Swept<crate::generate::Generation>, String> {
    use crate::generate::{capacity, Decoder, GenOptions, Generator};
    let total = (variants.len() * max_tokens) as f64;
    let mut rows = vec![];
    for (v, &variant) in variants.iter().enumerate() {
        let o = GenOptions { max_tokens, ignore_eos: true, variant, ..Default::default() };
        let cap = capacity(model, ids.len(), &o);
        let gpu = engine.gpu();
        let decoder = match gpu.as_deref() {
            Some(g) => Decoder::gpu(g, model, cap),
            None => Decoder::cpu(model, cap),
        };
        let mut g = Generator::new(decoder, model, ids, &o)?;
        let mut told = false;
        while g.next().await?.is_some() {
            if let (Some(note), false) = (g.note(), told) {
                told = true;
                engine.leave_gpu(note);
                progress.note(note);
            }
            progress.step("writing", (v * max_tokens + g.generated().len()) as f64, Some(total));
            progress.pause().await;
            if progress.cancelled() {
                return Ok(Swept { rows, cancelled: true });
            }
        }
        let done = g.finish();
        on_written(v, done.clone());
        rows.push(done);
    }
    Ok(Swept { rows, cancelled: false })
}

/// A word through the layers ([`crate::analysis::vectors`]): token `a_at` of `a_ids` against
/// token `b_at` of `b_ids`, one pass per text keeping the residual stream at that token.
pub async fn word_vectors(engine: &Engine, model: &Model, (a_ids, a_at): (&[u32], usize), (b_ids, b_at): (&[u32], usize), progress: &impl Progress) -> Result<crate::analysis::vectors::WordVectors, EngineError> {
    use crate::analysis::vectors::{check_at, compare_sides, side_options};
    check_at(a_ids, a_at, "first")?;
    check_at(b_ids, b_at, "second")?;
    progress.step("vectors", 0.0, Some(2.0));
    let a_out = forward(engine, model, a_ids, &side_options(a_at), progress).await?;
    progress.step("vectors", 1.0, Some(2.0));
    progress.pause().await;
    let b_out = forward(engine, model, b_ids, &side_options(b_at), progress).await?;
    Ok(compare_sides(model, (a_ids, a_at, &a_out), (b_ids, b_at, &b_out)))
}

/// The four cache policies of [`crate::analysis::through_model::policies`] over `ids`, one
/// pass each.
pub async fn streaming(engine: &Engine, model: &Model, ids: &[u32], window: usize, sinks: usize, progress: &impl Progress) -> Result<crate::analysis::through_model::Streaming, EngineError> {
    use crate::analysis::heads::Predictions;
    use crate::analysis::through_model::{policies, prediction_options, PolicyRun, Streaming};
    if ids.len() < 2 {
        return Err(EngineError::EmptyInput);
    }
    let mut out = std::collections::BTreeMap::new();
    for (i, p) in policies(window.max(1), sinks).into_iter().enumerate() {
        progress.step("streaming", i as f64, Some(4.0));
        let pass = forward(engine, model, ids, &prediction_options(p, None), progress).await?;
        out.insert(p.name().to_string(), PolicyRun::of(Predictions::of(ids, &pass).logprob, window));
        progress.pause().await;
    }
    Ok(Streaming { ids: ids.to_vec(), window, sinks, policies: out })
}

/// The logit lens of `ids` at `positions` on the engine (GPU first): one pass keeping every
/// block's output, then the unembedding of the positions drawn.
pub async fn lens(engine: &Engine, model: &Model, ids: &[u32], positions: &[usize], progress: &impl Progress) -> Result<crate::analysis::lens::Lens, EngineError> {
    use crate::analysis::lens::{check_positions, lens_of, lens_options};
    check_positions(ids.len(), positions)?;
    progress.step("lens", 0.0, Some(2.0));
    let out = forward(engine, model, ids, &lens_options(positions), progress).await?;
    progress.step("lens", 1.0, Some(2.0));
    progress.pause().await;
    Ok(lens_of(model, ids, &out.lens, positions))
}

/// The induction diagnostic: `period` random tokens (from `seed`) repeated once; per head, how
/// much each token of the repeat attends to the token after its first occurrence.
pub async fn induction(engine: &Engine, model: &Model, period: usize, seed: u64, progress: &impl Progress) -> Result<(Induction, AttentionTrace), EngineError> {
    let p = period.clamp(2, model.config.context_length / 2);
    let vocab = model.config.vocab_size as u32;
    let first: Vec<u32> = random_ids(p, seed).into_iter().map(|id| id % vocab).collect();
    let ids: Vec<u32> = first.iter().chain(&first).copied().collect();
    let opts = ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() };
    let out = forward(engine, model, &ids, &opts, progress).await?;
    let trace = out.trace.expect("capture was requested");
    Ok((Induction { period: p, induction: induction_grid(&trace, p), ids }, trace))
}

/// Lost in the middle: every trial of `experiment`, grouped by prompt size and the answer's
/// position; stops early (keeping the trials done) when `progress` says so.
pub async fn experiment(engine: &Engine, model: &Model, experiment: &Experiment, progress: &impl Progress) -> Result<Swept<ResultRow>, String> {
    let groups = experiment.groups().map_err(|e| e.to_string())?;
    let total = groups.iter().map(|g| g.3.len()).sum::<usize>() as f64;
    let (mut done, mut rows) = (0.0, vec![]);
    progress.step("experiment", 0.0, Some(total));
    for (size, index, relative, trials) in groups {
        let mut scores = vec![];
        for trial in trials {
            progress.pause().await;
            if progress.cancelled() {
                if !scores.is_empty() {
                    rows.push(ResultRow { size, summary: summarise(index, relative, &scores) });
                }
                return Ok(Swept { rows, cancelled: true });
            }
            let prep = Prepared::new(model, &trial).map_err(|e| e.to_string())?;
            let out = forward(engine, model, &prep.ids, &prep.options(), progress).await.map_err(|e| e.to_string())?;
            scores.push(prep.score(&out));
            done += 1.0;
            progress.step("experiment", done, Some(total));
        }
        rows.push(ResultRow { size, summary: summarise(index, relative, &scores) });
    }
    Ok(Swept { rows, cancelled: false })
}

/// The cost of attention alone at growing n (up to `max_n`, the model's context, 16 384): the
/// CPU's tiled kernel and, with the engine's GPU, the flash and the naive kernels.
pub async fn cost(engine: &Engine, model: &Model, max_n: usize, progress: &impl Progress) -> Result<Swept<CostRow>, String> {
    let (config, gpu) = (&model.config, engine.gpu());
    let sizes = sweep_sizes(max_n.min(config.context_length.max(128)).min(16_384));
    let total = (sizes.len() * if gpu.is_some() { 3 } else { 1 }) as f64;
    let mut rows = vec![];
    progress.step("cost", 0.0, Some(total));
    for n in sizes {
        let s = shape(config, n);
        let kernels: &[Option<bool>] = if gpu.is_some() { &[None, Some(true), Some(false)] } else { &[None] };
        for &kernel in kernels {
            progress.pause().await;
            if progress.cancelled() {
                return Ok(Swept { rows, cancelled: true });
            }
            rows.push(match (kernel, &gpu) {
                (Some(flash), Some(g)) => gpu_row(&g.ctx, s, flash, 2).await.map_err(|e| format!("the GPU failed at n = {n}: {e}"))?,
                _ => cpu_row(s, if n <= 1024 { 3 } else { 1 }),
            });
            progress.step("cost", rows.len() as f64, Some(total));
        }
    }
    Ok(Swept { rows, cancelled: false })
}
