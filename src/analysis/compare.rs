//! Two texts side by side: the same heads on two texts that differ a little (minimal pairs:
//! "…too big" / "…too small"), and which heads' patterns change most between them —
//! Clark et al. found heads "behave the same across texts"; here the reader checks on pairs
//! of their own. Rows are aligned by position from the first token where the texts differ
//! (before it both texts read the same tokens, so every row is the same) to the shorter
//! text's end; each head's change is the mean Jensen–Shannon distance of its aligned rows.

use crate::analysis::heads::js_distance;
use crate::model::capture::{AnalysisError, AttentionTrace};

/// Most aligned rows compared per head (the last ones of the range).
pub const COMPARE_MAX_ROWS: usize = 256;

/// `attnlab compare --json`; the page's "Two texts".
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextCompare {
    pub a_tokens: Vec<String>,
    pub b_tokens: Vec<String>,
    /// The first position where the two texts' tokens differ (the shorter length when one
    /// text begins the other; both lengths when they are the same).
    pub from: usize,
    /// The rows compared: `from .. to` (`to` = the shorter length).
    pub to: usize,
    /// Every head with its mean JS distance over the rows compared, largest first (ties:
    /// layer, then head order).
    pub heads: Vec<(usize, usize, f32)>,
    /// The five likeliest next tokens after each text (text, probability).
    pub next: [Vec<(String, f32)>; 2],
}

/// The first position where `a` and `b` differ.
pub fn first_difference(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Each head's mean JS distance between the two traces' rows `rows` (each row of both traces
/// over keys `0 ..= i`), largest first.
pub fn head_changes(ta: &AttentionTrace, tb: &AttentionTrace, rows: std::ops::Range<usize>) -> Result<Vec<(usize, usize, f32)>, AnalysisError> {
    let mut out = vec![];
    for l in 0..ta.n_layer.min(tb.n_layer) {
        for h in 0..ta.n_head.min(tb.n_head) {
            let mut sum = 0.0f64;
            for i in rows.clone() {
                sum += js_distance(&ta.row(l, h, i)?, &tb.row(l, h, i)?) as f64;
            }
            out.push((l, h, if rows.is_empty() { 0.0 } else { (sum / rows.len() as f64) as f32 }));
        }
    }
    out.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    Ok(out)
}

/// The rows two texts of ids `a`, `b` are compared on: from their first difference to the
/// shorter one's end, at most [`COMPARE_MAX_ROWS`] (the last ones).
pub fn compared_rows(a: &[u32], b: &[u32]) -> std::ops::Range<usize> {
    let to = a.len().min(b.len());
    let from = first_difference(a, b).min(to);
    to.saturating_sub(COMPARE_MAX_ROWS).max(from)..to
}

/// Both texts run with their attention kept, compared head by head.
pub fn compare_texts(b: &impl crate::backends::Backend, model: &crate::model::Model, a_ids: &[u32], b_ids: &[u32]) -> Result<TextCompare, crate::backends::EngineError> {
    use crate::backends::{ForwardOptions, LogitsFor};
    let opts = ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() };
    let (oa, ob) = (b.forward(model, a_ids, &opts)?, b.forward(model, b_ids, &opts)?);
    Ok(compare_passes(model, (a_ids, &oa), (b_ids, &ob)))
}

/// Two captured passes compared (see [`compare_texts`]).
pub fn compare_passes(model: &crate::model::Model, (a_ids, oa): (&[u32], &crate::backends::ForwardOutput), (b_ids, ob): (&[u32], &crate::backends::ForwardOutput)) -> TextCompare {
    let tok = &model.tokenizer;
    let rows = compared_rows(a_ids, b_ids);
    let heads = match (&oa.trace, &ob.trace) {
        (Some(ta), Some(tb)) => head_changes(ta, tb, rows.clone()).unwrap_or_default(),
        _ => vec![],
    };
    let next = |o: &crate::backends::ForwardOutput| -> Vec<(String, f32)> {
        let Some(row) = o.logits.rows().into_iter().next_back() else { return vec![] };
        let row: Vec<f32> = row.to_vec();
        let z = crate::analysis::report::log_sum_exp(&row);
        crate::analysis::report::top_k(&row, 5).into_iter().map(|(id, l)| (tok.token_text(id), (l - z).exp())).collect()
    };
    let names = |ids: &[u32]| ids.iter().map(|&i| tok.token_text(i)).collect();
    TextCompare { a_tokens: names(a_ids), b_tokens: names(b_ids), from: first_difference(a_ids, b_ids).min(rows.end), to: rows.end, heads, next: [next(oa), next(ob)] }
}
