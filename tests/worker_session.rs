//! The engine worker's request handling, natively (the browser glue only moves messages):
//! a run, head maps (exact, pooled, zoomed), thumbnails, and the JSON protocol.

mod common;

use attnlab::worker::protocol::{Request, Response, MASKED};
use attnlab::worker::session::{run_on_cpu, Session};
use attnlab::Model;

fn session() -> Session {
    Session::new(Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec::default())).unwrap())
}

#[test]
fn run_then_heads_regions_and_thumbnails() {
    let mut s = session();
    assert!(matches!(s.head(0, 0, 64, None, None), Response::Error { .. }), "no run yet");
    let text = "the cat ab the dog ".repeat(10);
    let Response::Result { run } = run_on_cpu(&mut s, &text, 1, 3, 64) else { panic!("run failed") };
    let n = run.report.ids.len();
    assert!(n > 64);
    assert_eq!(run.report.backend, "cpu");
    assert_eq!(run.report.attention.keys().collect::<Vec<_>>(), vec!["1.3"]);
    assert_eq!(run.sink_per_layer.len(), 2);
    let expect_baseline = (1..n).map(|i| 1.0 / (i as f32 + 1.0)).sum::<f32>() / (n - 1) as f32;
    assert!((run.sink_uniform_baseline - expect_baseline).abs() < 1e-6);
    // Longer than 64 tokens: pooled to at most 64 cells a side.
    assert!(run.map.pooled() && run.map.side_q <= 64);
    assert_eq!(run.next_tokens.len(), 8);

    // Another head, whole: exact rows come with it for export.
    let Response::Head { map, exact_rows } = s.head(0, 2, 512, None, None) else { panic!() };
    assert!(!map.pooled());
    let rows = exact_rows.expect("exact rows");
    assert_eq!(rows.len(), n);
    assert_eq!(map.values[5 * n + 3], rows[5][3]);
    assert_eq!(map.values[3 * n + 5], MASKED);

    // A zoomed region is exact and carries no rows.
    let Response::Head { map, exact_rows } = s.head(0, 2, 64, Some((40, 60)), Some((0, 30))) else { panic!() };
    assert_eq!((map.side_q, map.side_k, map.block_q, map.block_k), (20, 30, 1, 1));
    assert_eq!(map.values[0], rows[40][0]);
    assert!(exact_rows.is_none());

    let Response::Thumbs { thumbs } = s.thumbs(16) else { panic!() };
    assert_eq!(thumbs.len(), 2 * 4);
    assert!(thumbs.iter().all(|t| t.side_q <= 16 && t.values.iter().any(|v| *v > 0.0)));

    assert!(matches!(s.head(9, 0, 64, None, None), Response::Error { .. }));
}

#[test]
fn protocol_is_json_both_ways() {
    let req = Request::Run { text: "<b>hi</b>".into(), layer: 2, head: 1, max_side: 256 };
    let json = serde_json::to_string(&req).unwrap();
    assert!(json.contains("\"type\":\"run\""), "{json}");
    assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), req);
    let mut s = session();
    let resp = run_on_cpu(&mut s, "ab the", 0, 0, 32);
    let back: Response = serde_json::from_str(&serde_json::to_string(&resp).unwrap()).unwrap();
    assert_eq!(back, resp);
    let err = run_on_cpu(&mut s, "", 0, 0, 32);
    assert!(matches!(err, Response::Error { ref message, .. } if message.contains("empty")), "{err:?}");
}
