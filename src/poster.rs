//! Figures from an exported report (`attnlab inspect --json`, the page's JSON button): a
//! course page's "poster" draws these without downloading the model, with the numbers the
//! live path draws (the sink per layer and its baseline are [`crate::analysis::report`]'s).

use crate::analysis::HeadId;
use crate::analysis::report::InspectReport;

use crate::worker::protocol::{HeadMap, MapRegion, RunResult};

/// A head's map from its exact rows (row i holds keys 0..=i): exact when `n ≤ max_side`,
/// max-pooled into blocks otherwise, like the live map.
pub fn map_from_rows(rows: &[Vec<f32>], layer: usize, head: usize, max_side: usize) -> HeadMap {
    let n = rows.len();
    HeadMap::build(layer, head, MapRegion::whole(n, max_side), None, 0..n, |i, row| {
        row.clear();
        row.extend_from_slice(&rows[i][..rows[i].len().min(i + 1)]);
        true
    })
}

/// Parses `"L.H"`.
pub fn parse_key(key: &str) -> Option<(usize, usize)> {
    HeadId::parse(key).map(HeadId::pair)
}

/// The heads a report holds rows for, in layer-major order.
pub fn heads_held(report: &InspectReport) -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = report.attention.keys().filter_map(|k| parse_key(k)).collect();
    v.sort();
    v
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FigureError {
    #[error("not an attnlab JSON export: {0}")]
    Json(String),
    #[error("the figure holds no tokens")]
    Empty,
    #[error("the figure's attention rows for {0} are not a causal map of {1} tokens")]
    Shape(String, usize),
}

/// Reads an exported report and checks what a poster draws from it.
pub fn parse_report(json: &str) -> Result<InspectReport, FigureError> {
    let report: InspectReport = serde_json::from_str(json).map_err(|e| FigureError::Json(e.to_string()))?;
    let n = report.ids.len();
    if n == 0 || report.tokens.len() != n {
        return Err(FigureError::Empty);
    }
    for (key, rows) in &report.attention {
        if parse_key(key).is_none() || rows.len() != n || rows.iter().enumerate().any(|(i, r)| r.len() != i + 1 || r.iter().any(|p| !p.is_finite())) {
            return Err(FigureError::Shape(key.clone(), n));
        }
    }
    Ok(report)
}

/// The poster's result: the map of `layer.head` when the report holds it, else of the
/// first head it holds (`None`: it holds no rows at all, only the sink panel and tokens).
pub fn run_from_report(report: &InspectReport, layer: usize, head: usize, max_side: usize) -> (RunResult, bool) {
    let n = report.ids.len();
    let key = HeadId::key(layer, head);
    let (found, (l, h)) = if report.attention.contains_key(&key) { (true, (layer, head)) } else { (false, heads_held(report).first().copied().unwrap_or((layer, head))) };
    let map = match report.attention.get(&HeadId::key(l, h)) {
        Some(rows) => map_from_rows(rows, l, h, max_side),
        None => HeadMap { layer, head, n_tokens: n, rows: (0, n), cols: (0, n), side_q: 0, side_k: 0, block_q: 1, block_k: 1, values: vec![], window: None },
    };
    let run = RunResult {
        report: report.clone(),
        map,
        sink_per_layer: crate::analysis::report::sink_per_layer(&report.sink_mass_key0),
        sink_uniform_baseline: crate::analysis::report::uniform_baseline(n),
        next_tokens: vec![],
        memory_bytes: None,
    };
    (run, found)
}

/// Thumbnails of every head, when the report holds every head (`--heads all`).
pub fn thumbs_from_report(report: &InspectReport, side: usize) -> Option<Vec<HeadMap>> {
    let mut out = Vec::with_capacity(report.n_layers * report.n_heads);
    for l in 0..report.n_layers {
        for h in 0..report.n_heads {
            out.push(map_from_rows(report.attention.get(&HeadId::key(l, h))?, l, h, side.clamp(1, 64)));
        }
    }
    Some(out)
}
