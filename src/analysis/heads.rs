//! Heads compared: what each head does on a text (attention to the first token, to the
//! previous token, to itself, row entropy), how alike two heads are (Jensen–Shannon distance
//! between their rows), the induction diagnostic on a repeated random sequence, and head
//! knock-outs (ablation) with their effect on the next-token distribution.
//!
//! Rows are query positions i ≥ 1, averaged (row 0 can only look at itself).

use super::HeadId;
use crate::backends::{Backend, ForwardOptions, LogitsFor};
use crate::model::capture::AttentionTrace;
use crate::model::Model;

use super::explain::entropy;
use super::report::{log_sum_exp, top_k, ReportError};

/// `[layer][head]` scores.
pub type Grid = Vec<Vec<f32>>;

/// Every head as (layer, head, score), highest score first.
pub fn ranked(g: &Grid) -> Vec<(usize, usize, f32)> {
    let mut all: Vec<(usize, usize, f32)> = g.iter().enumerate().flat_map(|(l, r)| r.iter().enumerate().map(move |(h, v)| (l, h, *v))).collect();
    all.sort_by(|a, b| b.2.total_cmp(&a.2));
    all
}

/// Every head ranked by how much one query attends to one key: `rows` holds the query's row in
/// every head, layer-major with `n_head` per layer (as [`AttentionTrace::query_rows`] gives).
/// Highest first; ties keep the lower (layer, head). A key past a row's end counts as 0.
pub fn rank_by_key(rows: &[Vec<f32>], n_head: usize, key: usize) -> Vec<(usize, usize, f32)> {
    let n_head = n_head.max(1);
    let mut all: Vec<(usize, usize, f32)> = rows.iter().enumerate().map(|(i, r)| (i / n_head, i % n_head, r.get(key).copied().unwrap_or(0.0))).collect();
    all.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    all
}

/// The key that query `query` attends to most, averaged over every head's row, leaving out
/// key 0 (the sink) and the query itself; None when there is no such key (query < 2).
pub fn likeliest_key(rows: &[Vec<f32>], query: usize) -> Option<usize> {
    (1..query).map(|j| (j, rows.iter().map(|r| r.get(j).copied().unwrap_or(0.0)).sum::<f32>())).max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0))).map(|(j, _)| j)
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct HeadScores {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Mean p(i → 0).
    pub first_token: Grid,
    /// Mean p(i → i−1).
    pub previous_token: Grid,
    /// Mean p(i → i).
    #[serde(rename = "self")]
    pub self_: Grid,
    /// Mean row entropy, nats.
    pub entropy: Grid,
    /// (heads, heads), layer-major "L.H" order: mean over rows i ≥ 1 of the JS distance.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub js_distance: Option<Vec<Vec<f32>>>,
}

/// Every head's rows (row i: keys 0..=i), layer-major.
fn all_rows(t: &AttentionTrace) -> Vec<Vec<Vec<f32>>> {
    (0..t.n_layer).flat_map(|l| (0..t.n_head).map(move |h| (l, h))).map(|(l, h)| t.head_rows(l, h).expect("layer and head exist")).collect()
}

fn grid(t: &AttentionTrace, rows: &[Vec<Vec<f32>>], f: impl Fn(&[f32], usize) -> f64) -> Grid {
    let n = t.n_tokens;
    (0..t.n_layer)
        .map(|l| {
            (0..t.n_head)
                .map(|h| {
                    let r = &rows[l * t.n_head + h];
                    if n < 2 {
                        return 0.0;
                    }
                    ((1..n).map(|i| f(&r[i], i)).sum::<f64>() / (n - 1) as f64) as f32
                })
                .collect()
        })
        .collect()
}

/// Mean JS distance between every pair of heads over the query rows `rows` (each ≥ 1):
/// (heads, heads), layer-major. Computed as ½(Σp ln p + Σq ln q) − Σm ln m, m = (p+q)/2, with
/// each row's Σp ln p once per head: one logarithm per key and pair.
pub fn js_matrix(rows_of: &[Vec<Vec<f32>>], rows: &[usize]) -> Vec<Vec<f32>> {
    let heads = rows_of.len();
    let plogp = |r: &[f32]| r.iter().filter(|x| **x > 0.0).map(|&x| x as f64 * (x as f64).ln()).sum::<f64>();
    let neg: Vec<Vec<f64>> = rows_of.iter().map(|h| rows.iter().map(|&i| plogp(&h[i])).collect()).collect();
    let mut d = vec![vec![0f32; heads]; heads];
    if rows.is_empty() {
        return d;
    }
    for a in 0..heads {
        for b in a + 1..heads {
            let mut sum = 0f64;
            for (k, &i) in rows.iter().enumerate() {
                let (p, q) = (&rows_of[a][i], &rows_of[b][i]);
                let mlogm: f64 = p.iter().zip(q).map(|(&x, &y)| {
                    let m = 0.5 * (x as f64 + y as f64);
                    if m > 0.0 { m * m.ln() } else { 0.0 }
                }).sum();
                sum += (0.5 * (neg[a][k] + neg[b][k]) - mlogm).max(0.0).sqrt();
            }
            let v = (sum / rows.len() as f64) as f32;
            d[a][b] = v;
            d[b][a] = v;
        }
    }
    d
}

/// The pattern scores of every head, and with `similarity` the JS-distance matrix.
pub fn head_scores(t: &AttentionTrace, similarity: bool) -> HeadScores {
    let rows = all_rows(t);
    let all: Vec<usize> = (1..t.n_tokens).collect();
    let js = similarity.then(|| js_matrix(&rows, &all));
    HeadScores {
        ids: vec![],
        tokens: vec![],
        first_token: grid(t, &rows, |r, _| r[0] as f64),
        previous_token: grid(t, &rows, |r, i| r[i - 1] as f64),
        self_: grid(t, &rows, |r, i| r[i] as f64),
        entropy: grid(t, &rows, |r, _| entropy(r) as f64),
        js_distance: js,
    }
}

/// Query rows (≥ 1) for a similarity matrix costing at most `budget` key terms per pair of
/// heads: every row when they fit, else evenly spaced rows (the last included).
pub fn similarity_rows(n: usize, budget: usize) -> Vec<usize> {
    let all: Vec<usize> = (1..n).collect();
    let cost = |r: &[usize]| r.iter().map(|i| i + 1).sum::<usize>();
    if cost(&all) <= budget {
        return all;
    }
    // Rows average (n+1)/2 keys: take about budget / that many, evenly spaced.
    let k = (2 * budget / (n + 1)).clamp(1, n - 1);
    let mut rows: Vec<usize> = (0..k).map(|j| 1 + (j * (n - 2)) / k.max(1)).collect();
    rows.push(n - 1);
    rows.dedup();
    rows
}

/// The similarity matrix over `rows` only (see [`similarity_rows`]).
pub fn js_matrix_of(t: &AttentionTrace, rows: &[usize]) -> Vec<Vec<f32>> {
    js_matrix(&all_rows(t), rows)
}

/// Tokenizes, runs with capture, scores.
pub fn heads_text(model: &Model, backend: &dyn Backend, text: &str, similarity: bool) -> Result<HeadScores, ReportError> {
    let ids = model.tokenizer.encode(text);
    let out = backend.forward(model, &ids, &ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() })?;
    let mut s = head_scores(out.trace.as_ref().expect("capture was requested"), similarity);
    s.tokens = ids.iter().map(|&id| model.tokenizer.token_text(id)).collect();
    s.ids = ids;
    Ok(s)
}

/// The induction diagnostic's result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Induction {
    pub period: usize,
    /// The 2P ids run: P ids, then the same P again.
    pub ids: Vec<u32>,
    /// `[layer][head]`: mean over i = P..2P−1 of p(i → i−P+1).
    pub induction: Grid,
}

/// P ids from 1000..=20000 drawn by a seeded xorshift (reported with the result).
pub fn random_ids(period: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..period)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            1000 + (s % 19_001) as u32
        })
        .collect()
}

/// Runs `first` repeated twice and scores every head's attention to the token that followed
/// the previous occurrence of the current token.
pub fn induction(model: &Model, backend: &dyn Backend, first: &[u32]) -> Result<Induction, ReportError> {
    let p = first.len();
    let ids: Vec<u32> = first.iter().chain(first).copied().collect();
    let out = backend.forward(model, &ids, &ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() })?;
    let t = out.trace.as_ref().expect("capture was requested");
    Ok(Induction { period: p, ids, induction: induction_grid(t, p) })
}

/// `[layer][head]` induction scores of a capture of a sequence repeated twice with period `p`.
pub fn induction_grid(t: &AttentionTrace, p: usize) -> Grid {
    (0..t.n_layer)
        .map(|l| {
            (0..t.n_head)
                .map(|h| {
                    let sum: f64 = (p..(2 * p).min(t.n_tokens)).map(|i| t.row(l, h, i).map(|r| r[i + 1 - p] as f64).unwrap_or(0.0)).sum();
                    (sum / p.max(1) as f64) as f32
                })
                .collect()
        })
        .collect()
}

/// `attnlab ablate --json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Ablation {
    pub ids: Vec<u32>,
    pub heads: Vec<String>,
    /// 64 `[id, logit]` at the last position with the heads knocked out.
    pub last_logits_top: Vec<(u32, f32)>,
    pub last_logits_top_before: Vec<(u32, f32)>,
    /// KL(before ‖ after) of the next-token distribution at the last position, nats.
    pub kl_last: f32,
    /// For each position i = first_position .. n−2: log p(ids[i+1]) after minus before.
    pub delta_logprob: Vec<f32>,
    /// The same positions' log p(ids[i+1]) before the knock-out.
    #[serde(default)]
    pub logprob_before: Vec<f32>,
    /// The position `delta_logprob[0]` is about (0 unless the text was too long to score every
    /// position; see [`prediction_logits`]).
    #[serde(default)]
    pub first_position: usize,
}

/// What one forward pass predicted: log p(ids[i+1]) at each scored position, and the whole
/// next-token row (logits) at the last position.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    pub first_position: usize,
    pub logprob: Vec<f32>,
    pub last: Vec<f32>,
}

/// Logits to ask for to score the last `max_positions` predictions of `n` tokens (all of
/// them with `None`) and the last position.
pub fn prediction_logits(n: usize, max_positions: Option<usize>) -> LogitsFor {
    match max_positions {
        Some(m) if n > m + 1 => LogitsFor::Positions((n - 1 - m..n).collect()),
        _ => LogitsFor::All,
    }
}

impl Predictions {
    /// From a forward pass over `ids` run with [`prediction_logits`].
    pub fn of(ids: &[u32], out: &crate::backends::ForwardOutput) -> Predictions {
        let n = ids.len();
        let first_position = out.logit_positions.first().copied().unwrap_or(n - 1);
        let logprob = (first_position..n.saturating_sub(1))
            .map(|i| {
                let l = out.logits_at(i).expect("prediction positions were requested");
                let l = l.as_slice().expect("contiguous logits");
                l[ids[i + 1] as usize] - log_sum_exp(l)
            })
            .collect();
        let last = out.logits_at(n - 1).expect("the last position was requested").to_vec();
        Predictions { first_position, logprob, last }
    }
}

/// Before and after a knock-out of `heads`, compared.
pub fn compare(ids: &[u32], heads: &[(usize, usize)], before: &Predictions, after: &Predictions) -> Ablation {
    let (lb, la) = (&before.last, &after.last);
    let (zb, za) = (log_sum_exp(lb), log_sum_exp(la));
    let kl_last = lb
        .iter()
        .zip(la)
        .map(|(b, a)| {
            let pb = ((b - zb) as f64).exp();
            pb * ((b - zb) as f64 - (a - za) as f64)
        })
        .sum::<f64>() as f32;
    Ablation {
        heads: heads.iter().map(|&(l, h)| HeadId::key(l, h)).collect(),
        last_logits_top: top_k(la, 64),
        last_logits_top_before: top_k(lb, 64),
        kl_last: kl_last.max(0.0),
        delta_logprob: after.logprob.iter().zip(&before.logprob).map(|(a, b)| a - b).collect(),
        logprob_before: before.logprob.clone(),
        first_position: before.first_position,
        ids: ids.to_vec(),
    }
}

/// Options of the forward pass with `heads` knocked out (none: the plain pass).
pub fn ablation_options(n: usize, heads: &[(usize, usize)], capture: bool, max_positions: Option<usize>) -> ForwardOptions {
    ForwardOptions { capture_attention: capture, logits_for: prediction_logits(n, max_positions), ablate: heads.to_vec(), ..Default::default() }
}

/// Parses "L.H,L.H,L.*" into (layer, head) pairs.
pub fn parse_heads(s: &str, n_layer: usize, n_head: usize) -> Result<Vec<(usize, usize)>, ReportError> {
    let bad = || ReportError::BadHeads(s.to_string());
    let out = HeadId::parse_list(s, n_head).map_err(|_| bad())?;
    if out.is_empty() || out.iter().any(|h| h.layer >= n_layer || h.head >= n_head) {
        return Err(bad());
    }
    Ok(out.into_iter().map(HeadId::pair).collect())
}

/// Heads as `parse_heads` reads them, a whole layer as "L.*".
pub fn heads_spec(heads: &[(usize, usize)], n_head: usize) -> String {
    let mut heads = heads.to_vec();
    heads.sort_unstable();
    heads.dedup();
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < heads.len() {
        let l = heads[i].0;
        let in_layer = heads[i..].iter().take_while(|x| x.0 == l).count();
        if in_layer == n_head {
            out.push(format!("{l}.*"));
        } else {
            out.extend(heads[i..i + in_layer].iter().map(|&(l, h)| HeadId::key(l, h)));
        }
        i += in_layer;
    }
    out.join(",")
}

/// The forward pass with and without `heads` knocked out, compared (every position scored).
pub fn ablate(model: &Model, backend: &dyn Backend, text: &str, heads: &[(usize, usize)]) -> Result<Ablation, ReportError> {
    let ids = model.tokenizer.encode(text);
    let n = ids.len();
    let before = Predictions::of(&ids, &backend.forward(model, &ids, &ablation_options(n, &[], false, None))?);
    let after = Predictions::of(&ids, &backend.forward(model, &ids, &ablation_options(n, heads, false, None))?);
    Ok(compare(&ids, heads, &before, &after))
}

/// Heads grouped by how alike their rows are: the JS-distance matrix, an order that puts
/// similar heads next to each other (average-linkage hierarchical clustering, leaves in tree
/// order) and the groups left when the tree is cut at `threshold`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Similarity {
    /// (heads, heads), layer-major "L.H" order.
    pub distance: Vec<Vec<f32>>,
    /// Heads (layer-major indices) in cluster order.
    pub order: Vec<usize>,
    /// Groups of two or more heads whose average distance is below `threshold`, largest first.
    pub groups: Vec<Vec<usize>>,
    pub threshold: f32,
    /// "How many heads behave alike on this text", in one sentence.
    pub summary: String,
    /// How many query rows the distances average when not every row (long texts).
    #[serde(default)]
    pub rows: Option<usize>,
}

/// Where the similarity view cuts the tree: JS distance (the maximum is √ln 2 ≈ 0.83).
pub const ALIKE_BELOW: f32 = 0.15;

/// Average-linkage (UPGMA) clustering of a symmetric distance matrix: the merges as
/// (cluster a, cluster b, height), clusters numbered like scipy's linkage (leaves 0..n, the
/// k-th merge n + k). Heights never decrease.
#[allow(clippy::needless_range_loop)]
pub fn average_linkage(d: &[Vec<f32>]) -> Vec<(usize, usize, f32)> {
    let n = d.len();
    // Active clusters: (id, size); distances between active clusters by slot.
    let mut active: Vec<(usize, usize)> = (0..n).map(|i| (i, 1)).collect();
    let mut dist: Vec<Vec<f64>> = d.iter().map(|r| r.iter().map(|&v| v as f64).collect()).collect();
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    while active.len() > 1 {
        let (mut a, mut b, mut best) = (0, 1, f64::INFINITY);
        for i in 0..active.len() {
            for j in i + 1..active.len() {
                if dist[i][j] < best {
                    (a, b, best) = (i, j, dist[i][j]);
                }
            }
        }
        let (sa, sb) = (active[a].1 as f64, active[b].1 as f64);
        merges.push((active[a].0, active[b].0, best as f32));
        // The merged cluster takes slot a; slot b goes.
        for k in 0..active.len() {
            let v = (sa * dist[a][k] + sb * dist[b][k]) / (sa + sb);
            dist[a][k] = v;
            dist[k][a] = v;
        }
        dist[a][a] = 0.0;
        active[a] = (n + merges.len() - 1, active[a].1 + active[b].1);
        active.remove(b);
        dist.remove(b);
        for r in dist.iter_mut() {
            r.remove(b);
        }
    }
    merges
}

/// The leaves of the tree `merges` over `n` items, left to right.
pub fn leaf_order(n: usize, merges: &[(usize, usize, f32)]) -> Vec<usize> {
    if n == 0 {
        return vec![];
    }
    let mut order = Vec::with_capacity(n);
    let mut stack = vec![if merges.is_empty() { 0 } else { n + merges.len() - 1 }];
    while let Some(c) = stack.pop() {
        if c < n {
            order.push(c);
        } else {
            let (a, b, _) = merges[c - n];
            stack.push(b);
            stack.push(a);
        }
    }
    order
}

/// The groups (two or more items) joined by merges at heights below `threshold`, largest first.
pub fn groups_below(n: usize, merges: &[(usize, usize, f32)], threshold: f32) -> Vec<Vec<usize>> {
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut alive = vec![true; n];
    for &(a, b, h) in merges {
        if h >= threshold {
            break;
        }
        let mut m = std::mem::take(&mut members[a]);
        m.extend(std::mem::take(&mut members[b]));
        alive[a] = false;
        alive[b] = false;
        members.push(m);
        alive.push(true);
    }
    let mut groups: Vec<Vec<usize>> = members.into_iter().zip(alive).filter(|(m, a)| *a && m.len() > 1).map(|(mut m, _)| {
        m.sort_unstable();
        m
    }).collect();
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    groups
}

/// What a group of heads mostly does, from the scores (mean over its heads above one half).
fn group_kind(s: &HeadScores, group: &[usize], n_head: usize) -> &'static str {
    let mean = |g: &Grid| group.iter().map(|&i| g[i / n_head][i % n_head]).sum::<f32>() / group.len() as f32;
    let scores = [(mean(&s.first_token), "they park their attention on the first token (sink heads)"), (mean(&s.previous_token), "they look at the previous token"), (mean(&s.self_), "they look at the token itself")];
    scores.iter().filter(|(v, _)| *v > 0.5).map(|(_, k)| *k).next().unwrap_or("no single pattern dominates")
}

/// Clusters `scores.js_distance` (which must be present) and says how many heads behave alike.
pub fn similarity(scores: &HeadScores, n_head: usize) -> Option<Similarity> {
    similarity_over(scores, n_head, None)
}

/// [`similarity`], saying when the distances average `sampled` = (rows used, rows in all).
pub fn similarity_over(scores: &HeadScores, n_head: usize, sampled: Option<(usize, usize)>) -> Option<Similarity> {
    let d = scores.js_distance.clone()?;
    let n = d.len();
    let merges = average_linkage(&d);
    let order = leaf_order(n, &merges);
    let groups = groups_below(n, &merges, ALIKE_BELOW);
    let alike: usize = groups.iter().map(Vec::len).sum();
    let summary = match groups.first() {
        None => format!("No two of the {n} heads behave alike on this text: every pair's rows differ by a JS distance of {ALIKE_BELOW} or more."),
        Some(g) => format!(
            "{alike} of the {n} heads fall into {} group{} whose rows differ by less than {ALIKE_BELOW} (JS distance; the most is 0.83); the largest holds {} heads, and {}. The other {} heads each behave in their own way.",
            groups.len(),
            if groups.len() == 1 { "" } else { "s" },
            g.len(),
            group_kind(scores, g, n_head),
            n - alike
        ),
    };
    let summary = match sampled {
        Some((used, all)) if used < all => format!("{summary} (Distances averaged over {used} evenly spaced rows of {all}, to keep this under a few seconds.)"),
        _ => summary,
    };
    Some(Similarity { distance: d, order, groups, threshold: ALIKE_BELOW, summary, rows: sampled.map(|s| s.0) })
}

/// The definition, plainly: Jensen–Shannon distance (√ of the divergence, natural log).
pub fn js_distance(p: &[f32], q: &[f32]) -> f32 {
    let kl = |a: &[f32], m: &[f64]| a.iter().zip(m).filter(|(x, _)| **x > 0.0).map(|(x, m)| *x as f64 * (*x as f64 / m).ln()).sum::<f64>();
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (*a as f64 + *b as f64)).collect();
    (0.5 * kl(p, &m) + 0.5 * kl(q, &m)).max(0.0).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;



    /// Two pairs, interleaved: {0, 2} at 0.1 and {1, 3} at 0.2. By hand (UPGMA): merge 0+2 at
    /// 0.1 (cluster 4); d(4,1) = (0.5+0.6)/2, d(4,3) = (0.7+0.8)/2; merge 1+3 at 0.2 (cluster 5);
    /// d(4,5) = (0.55+0.75)/2 = 0.65.
    fn four() -> Vec<Vec<f32>> {
        let mut d = vec![vec![0.0; 4]; 4];
        for (a, b, v) in [(0, 2, 0.1), (1, 3, 0.2), (0, 1, 0.5), (0, 3, 0.7), (2, 1, 0.6), (2, 3, 0.8)] {
            d[a][b] = v;
            d[b][a] = v;
        }
        d
    }

    #[test]
    fn heads_rank_by_one_key_highest_first_ties_in_order() {
        // 2 layers × 3 heads; the query is token 2 (rows of 3).
        let rows = vec![
            vec![0.5, 0.2, 0.3], // 0.0
            vec![0.1, 0.7, 0.2], // 0.1
            vec![0.6, 0.2, 0.2], // 0.2
            vec![0.2, 0.7, 0.1], // 1.0 (ties with 0.1 on key 1)
            vec![0.9, 0.05, 0.05], // 1.1
            vec![1.0],           // 1.2: a short row (a sliding window cut) counts as 0
        ];
        let r = rank_by_key(&rows, 3, 1);
        assert_eq!(r.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(), vec![(0, 1), (1, 0), (0, 0), (0, 2), (1, 1), (1, 2)]);
        assert_eq!(r[0].2, 0.7);
        assert_eq!(r[5].2, 0.0);
        // The top is the maximum over every row at that key.
        for key in 0..3 {
            let max = rows.iter().map(|r| r.get(key).copied().unwrap_or(0.0)).fold(f32::MIN, f32::max);
            assert_eq!(rank_by_key(&rows, 3, key)[0].2, max);
        }
    }

    #[test]
    fn the_likeliest_key_skips_the_sink_and_the_query_itself() {
        // Query 3: key 0 (sink) and key 3 (itself) carry most, key 2 wins among the rest.
        let rows = vec![vec![0.6, 0.1, 0.1, 0.2], vec![0.5, 0.0, 0.3, 0.2]];
        assert_eq!(likeliest_key(&rows, 3), Some(2));
        // Ties go to the earlier key; nothing between the sink and the query gives None.
        assert_eq!(likeliest_key(&[vec![0.5, 0.2, 0.2, 0.1]], 3), Some(1));
        assert_eq!(likeliest_key(&rows, 1), None);
    }

    #[test]
    fn average_linkage_by_hand() {
        let m = average_linkage(&four());
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].0, m[0].1), (0, 2));
        assert_eq!((m[1].0, m[1].1), (1, 3));
        assert_eq!((m[2].0, m[2].1), (4, 5));
        for (got, want) in m.iter().map(|x| x.2).zip([0.1, 0.2, 0.65]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(leaf_order(4, &m), vec![0, 2, 1, 3]);
        assert_eq!(groups_below(4, &m, 0.15), vec![vec![0, 2]]);
        assert_eq!(groups_below(4, &m, 0.3), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(groups_below(4, &m, 1.0), vec![vec![0, 1, 2, 3]]);
    }

    #[test]
    fn heads_spec_round_trips() {
        let heads = parse_heads("3.1, 2.*,0.0", 4, 3).unwrap();
        assert_eq!(heads, vec![(3, 1), (2, 0), (2, 1), (2, 2), (0, 0)]);
        assert_eq!(heads_spec(&heads, 3), "0.0,2.*,3.1");
        assert_eq!(parse_heads(&heads_spec(&heads, 3), 4, 3).unwrap().len(), 5);
        assert!(parse_heads("4.0", 4, 3).is_err() && parse_heads("0.3", 4, 3).is_err() && parse_heads("x", 4, 3).is_err());
    }

    #[test]
    fn similarity_sentence_counts_heads() {
        let grid = |v: [f32; 4]| vec![v[..2].to_vec(), v[2..].to_vec()];
        let s = HeadScores {
            ids: vec![],
            tokens: vec![],
            first_token: grid([0.9, 0.1, 0.8, 0.1]),
            previous_token: grid([0.0; 4]),
            self_: grid([0.0; 4]),
            entropy: grid([0.0; 4]),
            js_distance: Some(four()),
        };
        let sim = similarity(&s, 2).unwrap();
        assert_eq!(sim.groups, vec![vec![0, 2]]);
        assert!(sim.summary.starts_with("2 of the 4 heads fall into 1 group whose"), "{}", sim.summary);
        assert!(sim.summary.contains("first token"), "{}", sim.summary);
        assert!(sim.summary.contains("other 2 heads"), "{}", sim.summary);
        assert_eq!(average_linkage(&[vec![0.0]]), vec![]);
        assert_eq!(leaf_order(1, &[]), vec![0]);
    }

    #[test]
    fn js_matrix_is_the_definition() {
        // Two heads, rows 1 and 2 of a 3-token text.
        let a = vec![vec![1.0], vec![0.5, 0.5], vec![1.0, 0.0, 0.0]];
        let b = vec![vec![1.0], vec![0.9, 0.1], vec![0.0, 0.0, 1.0]];
        let d = js_matrix(&[a.clone(), b.clone()], &[1, 2]);
        let want = 0.5 * (js_distance(&a[1], &b[1]) + js_distance(&a[2], &b[2]));
        assert!((d[0][1] - want).abs() < 1e-6 && d[1][0] == d[0][1] && d[0][0] == 0.0, "{d:?} vs {want}");
        // Disjoint rows are √ln 2 apart.
        assert!((js_distance(&a[2], &b[2]) - 2f32.ln().sqrt()).abs() < 1e-6);
    }

    #[test]
    fn similarity_rows_fit_the_budget() {
        assert_eq!(similarity_rows(5, 100), vec![1, 2, 3, 4]);
        let r = similarity_rows(1000, 20_000);
        assert!(r.len() > 10 && r.len() < 60, "{}", r.len());
        assert_eq!((r[0], *r.last().unwrap()), (1, 999));
        assert!(r.windows(2).all(|w| w[0] < w[1]));
        assert!(r.iter().map(|i| i + 1).sum::<usize>() <= 2 * 20_000);
    }
}
