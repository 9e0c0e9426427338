//! The CPU forward pass against `tests/data/forward.json`: Hugging Face transformers, eager
//! attention, float32, on the same GGUF (see `tests/data/REFERENCE.md`).

mod common;

use attnlab::analysis::report::{inspect, HeadSelection};
use attnlab::backends::cpu::CpuBackend;
use serde_json::Value;

fn max_abs(a: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    a.into_iter().map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn cpu_forward_matches_transformers() {
    let model = common::real_model();
    let reference: Value = serde_json::from_str(include_str!("data/forward.json")).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let report = inspect(&model, &CpuBackend::new(), text, &HeadSelection::All).unwrap();
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(report.ids, ids, "{text}: ids");

        let att = case["attention"].as_array().unwrap();
        assert_eq!(att.len(), model.config.n_layer);
        let mut worst = 0.0f64;
        for (l, heads) in att.iter().enumerate() {
            for (h, rows) in heads.as_array().unwrap().iter().enumerate() {
                let ours = &report.attention[&format!("{l}.{h}")];
                for (i, row) in rows.as_array().unwrap().iter().enumerate() {
                    let row = row.as_array().unwrap();
                    assert_eq!(ours[i].len(), row.len(), "{text}: row {l}.{h}.{i} length");
                    worst = worst.max(max_abs(ours[i].iter().zip(row).map(|(a, b)| (*a as f64, b.as_f64().unwrap()))));
                }
            }
        }
        assert!(worst <= 1e-4, "{text}: attention max abs diff {worst}");

        let sink = max_abs(case["sink_mass_key0"].as_array().unwrap().iter().zip(&report.sink_mass_key0).flat_map(|(r, o)| {
            r.as_array().unwrap().iter().zip(o).map(|(a, b)| (a.as_f64().unwrap(), b.unwrap() as f64)).collect::<Vec<_>>()
        }));
        assert!(sink <= 1e-4, "{text}: sink mass diff {sink}");

        let ours_top: std::collections::HashMap<u32, f32> = report.last_logits_top.iter().copied().collect();
        let top = case["last_logits_top64"].as_array().unwrap();
        assert_eq!(top.len(), 64);
        let expected_ids: Vec<u32> = top.iter().map(|p| p[0].as_u64().unwrap() as u32).collect();
        let ours_ids: Vec<u32> = report.last_logits_top.iter().map(|p| p.0).collect();
        assert_eq!(ours_ids[0], expected_ids[0], "{text}: top-1 id");
        for p in top {
            let id = p[0].as_u64().unwrap() as u32;
            let logit = p[1].as_f64().unwrap();
            let ours = *ours_top.get(&id).unwrap_or_else(|| panic!("{text}: id {id} missing from our top 64")) as f64;
            assert!((ours - logit).abs() <= 1e-2, "{text}: logit of {id}: {ours} vs {logit}");
        }
        assert!((report.last_logsumexp as f64 - case["last_logsumexp"].as_f64().unwrap()).abs() <= 1e-2);
        let argmax: Vec<u32> = case["argmax_per_position"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(report.argmax_per_position, argmax, "{text}: argmax per position");
        assert!((report.final_hidden_norm_last as f64 - case["final_hidden_norm_last"].as_f64().unwrap()).abs() <= 1e-2);
    }
}
