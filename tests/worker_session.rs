//! The engine worker's request handling, natively (the browser glue only moves messages):
//! a run, head maps (exact, pooled, zoomed), thumbnails, the protocol through serde, long
//! texts (refused with a cut, sized results, the whole context) and the wasm memory budget.

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
    assert!(matches!(s.head(0, 0, 0, 64, None, None), Response::Error { .. }), "no run yet");
    let text = "the cat ab the dog ".repeat(10);
    let Response::Result { run } = run_on_cpu(&mut s, 0, &text, 1, 3, 64) else { panic!("run failed") };
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
    let Response::Head { map, exact_rows } = s.head(0, 0, 2, 512, None, None) else { panic!() };
    assert!(!map.pooled());
    let rows = exact_rows.expect("exact rows");
    assert_eq!(rows.len(), n);
    assert_eq!(map.values[5 * n + 3], rows[5][3]);
    assert_eq!(map.values[3 * n + 5], MASKED);

    // A zoomed region is exact and carries no rows.
    let Response::Head { map, exact_rows } = s.head(0, 0, 2, 64, Some((40, 60)), Some((0, 30))) else { panic!() };
    assert_eq!((map.side_q, map.side_k, map.block_q, map.block_k), (20, 30, 1, 1));
    assert_eq!(map.values[0], rows[40][0]);
    assert!(exact_rows.is_none());

    let Response::Thumbs { thumbs } = s.thumbs(0, 16) else { panic!() };
    assert_eq!(thumbs.len(), 2 * 4);
    assert!(thumbs.iter().all(|t| t.side_q <= 16 && t.values.iter().any(|v| *v > 0.0)));

    assert!(matches!(s.head(0, 9, 0, 64, None, None), Response::Error { .. }));
}

#[test]
fn protocol_round_trips_through_serde() {
    let req = Request::Run { text: "<b>hi</b>".into(), layer: 2, head: 1, max_side: 256, slot: 0, view: Default::default() };
    let json = serde_json::to_string(&req).unwrap();
    assert!(json.contains("\"type\":\"run\""), "{json}");
    assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), req);
    let mut s = session();
    let resp = run_on_cpu(&mut s, 0, "ab the", 0, 0, 32);
    let back: Response = serde_json::from_str(&serde_json::to_string(&resp).unwrap()).unwrap();
    assert_eq!(back, resp);
    let err = run_on_cpu(&mut s, 0, "", 0, 0, 32);
    assert!(matches!(err, Response::Error { ref message, .. } if message.contains("empty")), "{err:?}");
}

#[test]
fn slots_keep_each_widgets_capture_apart() {
    let mut s = session();
    let Response::Result { run: a } = run_on_cpu(&mut s, 1, "the cat ab", 0, 1, 64) else { panic!() };
    let Response::Result { run: b } = run_on_cpu(&mut s, 2, "the dog the dog the dog", 0, 1, 64) else { panic!() };
    assert_ne!(a.report.ids.len(), b.report.ids.len());
    // Slot 1 still answers with its own text's map after slot 2 ran.
    let Response::Head { map, .. } = s.head(1, 1, 2, 64, None, None) else { panic!() };
    assert_eq!(map.n_tokens, a.report.ids.len());
    let Response::Head { map, .. } = s.head(2, 1, 2, 64, None, None) else { panic!() };
    assert_eq!(map.n_tokens, b.report.ids.len());
    let Response::Thumbs { thumbs } = s.thumbs(1, 8) else { panic!() };
    assert_eq!(thumbs[0].n_tokens, a.report.ids.len());
    // An unknown slot has nothing to show.
    assert!(matches!(s.head(7, 0, 0, 64, None, None), Response::Error { .. }));
    // Past the slot limit the oldest capture goes; the newest stays.
    for slot in 10..10 + attnlab::worker::session::KEPT_SLOTS as u32 {
        let _ = run_on_cpu(&mut s, slot, "ab", 0, 0, 8);
    }
    assert!(matches!(s.head(1, 0, 0, 64, None, None), Response::Error { .. }), "slot 1 was dropped");
    assert!(matches!(s.head(10 + attnlab::worker::session::KEPT_SLOTS as u32 - 1, 0, 0, 64, None, None), Response::Head { .. }));
}

#[test]
fn posters_draw_the_same_maps_as_the_live_path() {
    use attnlab::poster::{map_from_rows, parse_report, run_from_report, thumbs_from_report};
    let mut s = session();
    let text = "the cat ab the dog ".repeat(6);
    let Response::Result { run } = run_on_cpu(&mut s, 0, &text, 1, 3, 16) else { panic!() };
    let rows = &run.report.attention["1.3"];
    // Pooled (n > 16) and exact maps from exported rows equal the live ones.
    assert!(run.map.pooled());
    assert_eq!(map_from_rows(rows, 1, 3, 16), run.map);
    let Response::Head { map, .. } = s.head(0, 1, 3, 512, None, None) else { panic!() };
    assert_eq!(map_from_rows(rows, 1, 3, 512), map);

    // A poster from the export: same sink curve and baseline; a head it lacks falls back.
    let json = serde_json::to_string(&run.report).unwrap();
    let report = parse_report(&json).unwrap();
    let (poster, found) = run_from_report(&report, 1, 3, 16);
    assert!(found);
    assert_eq!(poster.sink_per_layer, run.sink_per_layer);
    assert_eq!(poster.sink_uniform_baseline, run.sink_uniform_baseline);
    assert_eq!(poster.map, run.map);
    let (other, found) = run_from_report(&report, 0, 0, 16);
    assert!(!found);
    assert_eq!((other.map.layer, other.map.head), (1, 3));
    assert!(thumbs_from_report(&report, 8).is_none(), "one head is not every head");

    // Hostile figures are refused with a reason, never drawn wrong.
    assert!(parse_report("{").unwrap_err().to_string().contains("not an attnlab JSON export"));
    let mut bad = run.report.clone();
    bad.attention.get_mut("1.3").unwrap()[2].push(0.5);
    assert!(parse_report(&serde_json::to_string(&bad).unwrap()).unwrap_err().to_string().contains("1.3"));
}

#[test]
fn gemma_session_reports_windows_and_exact_zeros_outside_them() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(attnlab::GEMMA3_MODEL_PATH);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}. Run `make setup`.", path.display()));
    let mut s = Session::new(Model::from_gguf_vec(bytes).unwrap());
    let summary = attnlab::worker::session::summary(&s.model);
    assert_eq!((summary.architecture.as_str(), summary.n_head, summary.n_kv_head), ("gemma3", 4, 1));
    assert_eq!(summary.layer_window[4], Some(512));
    assert_eq!(summary.layer_window[5], None);
    // 600 tokens: past the window.
    let text = "one two three four five six seven eight nine ten ".repeat(60);
    let Response::Result { run } = run_on_cpu(&mut s, 0, &text, 0, 0, 64) else { panic!("run failed") };
    let n = run.report.ids.len();
    assert!(n > 560, "{n} tokens");
    assert_eq!(run.map.window, Some(512));
    assert_eq!(run.report.argmax_per_position.len(), n);
    // A zoom on the last query rows, first keys: exact zeros on a local layer, not on a global one.
    let Response::Head { map, .. } = s.head(0, 4, 1, 64, Some((n - 10, n)), Some((0, 20))) else { panic!() };
    assert!(map.values.iter().all(|&v| v == 0.0), "local layer sees keys older than 512");
    assert_eq!(map.window, Some(512));
    let Response::Head { map, .. } = s.head(0, 5, 1, 64, Some((n - 10, n)), Some((0, 20))) else { panic!() };
    assert!(map.values.iter().any(|&v| v > 0.0), "a global layer sees every key");
    assert_eq!(map.window, None);
}

#[test]
fn what_if_maps_and_explain_through_the_session() {
    use attnlab::analysis::explain::{MapView, WhatIf};
    let mut s = session();
    let text = "the cat ab the dog ".repeat(3);
    let Response::Result { run } = run_on_cpu(&mut s, 0, &text, 1, 3, 64) else { panic!("run failed") };
    let n = run.report.ids.len();
    // Without the mask the upper triangle is no longer masked; exact rows have n entries.
    let Response::Head { map, exact_rows } = s.head_view(0, 1, 3, 64, None, None, MapView { what_if: WhatIf::Unmasked, hide_sink: false }) else { panic!() };
    assert!(!map.pooled());
    assert!(map.values.iter().all(|&v| v != MASKED));
    // Exports stay the model's rows (row i: keys 0..=i), whatever the view.
    assert!(exact_rows.unwrap().iter().enumerate().all(|(i, r)| r.len() == i + 1));
    // The plain view is the ordinary map.
    let (Response::Head { map: a, .. }, Response::Head { map: b, .. }) = (s.head_view(0, 1, 3, 64, None, None, MapView::default()), s.head(0, 1, 3, 64, None, None)) else { panic!() };
    assert_eq!(a, b);
    // Pooled what-if maps keep the region's geometry.
    let Response::Head { map, .. } = s.head_view(0, 1, 3, 8, None, None, MapView { what_if: WhatIf::NoRope, hide_sink: true }) else { panic!() };
    assert!(map.pooled() && map.side_q <= 8);
    let Response::Explain { explain } = s.explain(0, 1, 3, n - 1) else { panic!() };
    assert_eq!(explain.tokens.len(), n);
    assert_eq!(explain.probs.len(), n);
    assert!(matches!(s.explain(0, 9, 0, 0), Response::Error { .. }));
    assert!(matches!(s.explain(5, 0, 0, 0), Response::Error { .. }), "no run in slot 5");
}

#[test]
fn head_scores_through_the_session() {
    let mut s = session();
    assert!(matches!(s.heads(0), Response::Error { .. }), "no run yet");
    let Response::Result { run } = run_on_cpu(&mut s, 0, "the cat ab the dog the cat", 0, 0, 64) else { panic!("run failed") };
    let Response::Heads { scores } = s.heads(0) else { panic!() };
    assert_eq!((scores.first_token.len(), scores.first_token[0].len()), (2, 4));
    assert_eq!(scores.ids, run.report.ids);
    // The report's sink mass is the first-token score.
    for l in 0..2 {
        for h in 0..4 {
            assert!((scores.first_token[l][h] - run.report.sink_mass_key0[l][h].unwrap()).abs() < 1e-5);
        }
    }
    assert!(scores.js_distance.is_none());
}

/// The worker's knock-out natively: the shared flow on a CPU engine, then the session.
fn ablate_on_cpu(s: &mut Session, slot: u32, heads: &[(usize, usize)]) -> Response {
    use attnlab::backends::engine::Engine;
    use attnlab::flows::{ablation, Silent};
    let Some(ids) = s.run_ids(slot) else { return Response::Error { phase: "knock-out".into(), message: "run a text first".into() } };
    let (before, after) = pollster::block_on(ablation(&Engine::cpu(), &s.model, &ids, heads, Some(attnlab::worker::session::ABLATION_POSITIONS), &Silent)).unwrap();
    s.finish_ablation(slot, heads, &before, after)
}

#[test]
fn knock_out_and_similarity_through_the_session() {
    use attnlab::analysis::heads::{ablate, average_linkage};
    use attnlab::backends::cpu::CpuBackend;
    use attnlab::worker::protocol::ablated_slot;
    let mut s = session();
    assert!(matches!(ablate_on_cpu(&mut s, 0, &[(0, 1)]), Response::Error { .. }), "no run yet");
    let text = "the cat ab the dog the cat ab";
    let Response::Result { run } = run_on_cpu(&mut s, 0, text, 1, 2, 64) else { panic!("run failed") };
    let n = run.report.ids.len();

    // The worker's knock-out is the CLI's (`attnlab ablate`), plus what the page draws.
    let Response::Ablation { ablation, tokens, next, changed } = ablate_on_cpu(&mut s, 0, &[(0, 1), (0, 3)]) else { panic!("knock-out failed") };
    let cli = ablate(&s.model, &CpuBackend::new(), text, &[(0, 1), (0, 3)]).unwrap();
    assert_eq!(*ablation, cli);
    assert_eq!(ablation.delta_logprob.len(), n - 1);
    assert!(ablation.kl_last > 0.0 && ablation.delta_logprob.iter().any(|d| d.abs() > 1e-4), "knocking out two heads changes the predictions");
    assert_eq!(tokens.len(), n);
    assert!(!next.is_empty() && next.iter().all(|(_, b, a)| (0.0..=1.0).contains(b) && (0.0..=1.0).contains(a)));
    assert!(next.windows(2).all(|w| w[0].1.max(w[0].2) >= w[1].1.max(w[1].2)), "likeliest first");

    // Maps under the knock-out: layer 0 (knocked) unchanged, layer 1 changed.
    let map = |s: &Session, slot, l| match s.head(slot, l, 2, 64, None, None) {
        Response::Head { map, .. } => map.values,
        r => panic!("{r:?}"),
    };
    assert_eq!(map(&s, 0, 0), map(&s, ablated_slot(0), 0));
    let (plain, after) = (map(&s, 0, 1), map(&s, ablated_slot(0), 1));
    assert!(plain.iter().zip(&after).any(|(a, b)| (a - b).abs() > 1e-4), "a later layer's map moves");
    // The heads that moved most are in layer 1, largest first.
    assert!(!changed.is_empty() && changed[0].0 == 1 && changed[0].2 > 1e-4, "{changed:?}");
    assert!(changed.windows(2).all(|w| w[0].2 >= w[1].2));
    assert!(changed.iter().filter(|c| c.0 == 0).all(|c| c.2 == 0.0), "layer 0's maps cannot move");
    // A new run drops the old knock-out's capture.
    run_on_cpu(&mut s, 0, "the dog", 1, 2, 64);
    assert!(matches!(s.head(ablated_slot(0), 1, 2, 64, None, None), Response::Error { .. }));

    // Similarity: symmetric, zero diagonal, the order a permutation of every head.
    let Response::Similarity { similarity } = s.similarity(0) else { panic!() };
    let heads = 2 * 4;
    assert_eq!(similarity.distance.len(), heads);
    let mut order = similarity.order.clone();
    order.sort_unstable();
    assert_eq!(order, (0..heads).collect::<Vec<_>>());
    for a in 0..heads {
        assert_eq!(similarity.distance[a][a], 0.0);
        for b in 0..heads {
            assert_eq!(similarity.distance[a][b], similarity.distance[b][a]);
        }
    }
    assert_eq!(average_linkage(&similarity.distance).len(), heads - 1);
    // Short texts: every row, the CLI's numbers.
    let cli = attnlab::analysis::heads::heads_text(&s.model, &CpuBackend::new(), "the dog", true).unwrap();
    let want = cli.js_distance.unwrap();
    for a in 0..heads {
        for b in 0..heads {
            assert!((similarity.distance[a][b] - want[a][b]).abs() < 1e-6);
        }
    }
    assert_eq!(similarity.rows, Some(cli.ids.len() - 1));
    // Long texts: evenly spaced rows, and the sentence says so.
    let mut s = Session::new(Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec { context: 512, ..Default::default() })).unwrap());
    let r = run_on_cpu(&mut s, 0, &"the cat ab the dog ".repeat(25), 1, 2, 64);
    let Response::Result { run } = r else { panic!("{r:?}") };
    let Response::Similarity { similarity: long } = s.similarity(0) else { panic!() };
    let n = run.report.ids.len();
    assert!(n > 150, "{n} tokens");
    assert!(long.rows.unwrap() < n - 1 && long.rows.unwrap() > 10, "{:?} of {n}", long.rows);
    assert!(long.summary.contains("evenly spaced rows"), "{}", long.summary);
    assert!(similarity.summary.contains(&format!("of the {heads} heads")) || similarity.summary.starts_with("No two"), "{}", similarity.summary);
    let json = serde_json::to_string(&Request::Ablate { heads: vec![(0, 1)], slot: 0 }).unwrap();
    assert_eq!(json, r#"{"type":"ablate","heads":[[0,1]],"slot":0}"#);
}

#[test]
fn long_texts_score_the_last_predictions_only() {
    use attnlab::analysis::heads::{ablation_options, prediction_logits, Predictions};
    use attnlab::backends::{cpu::CpuBackend, Backend, LogitsFor};
    let s = session();
    let ids = s.model.tokenizer.encode("the cat ab the dog the cat ab the dog");
    let n = ids.len();
    assert!(matches!(prediction_logits(n, None), LogitsFor::All));
    assert!(matches!(prediction_logits(n, Some(n)), LogitsFor::All));
    let b = CpuBackend::new();
    let all = Predictions::of(&ids, &b.forward(&s.model, &ids, &ablation_options(n, &[], false, None)).unwrap());
    let last3 = Predictions::of(&ids, &b.forward(&s.model, &ids, &ablation_options(n, &[], false, Some(3))).unwrap());
    assert_eq!((all.first_position, all.logprob.len()), (0, n - 1));
    assert_eq!((last3.first_position, last3.logprob.len()), (n - 4, 3));
    for (a, b) in all.logprob[n - 4..].iter().zip(&last3.logprob) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert!(all.logprob.iter().all(|l| *l <= 0.0 && l.is_finite()));
    assert_eq!(all.last, last3.last);
}

/// A text longer than the model reads is refused with the limit and where to cut; cut there,
/// it runs. Beyond the exact-rows limit the result carries the pooled map only, and the rows
/// come on request (the export), equal to an exact zoom of the same head.
#[test]
fn too_long_texts_are_refused_with_a_cut_and_long_results_are_sized_by_the_view() {
    use attnlab::worker::session::EXACT_ROWS_LIMIT;
    let spec = common::TinySpec { context: 4096, ..Default::default() };
    let mut s = Session::new(Model::from_gguf_bytes(&common::tiny_model_bytes(&spec)).unwrap());
    let text = "the cat ab the dog ".repeat(1200);
    let n_all = s.tokenize(&text).len();
    assert!(n_all > 4096, "{n_all}");
    let Response::TooLong { n, max, keep_bytes, why } = run_on_cpu(&mut s, 0, &text, 1, 2, 256) else { panic!("not refused") };
    assert_eq!((n, max), (n_all, 4096));
    assert!(why.contains("4096"), "{why}");
    let cut = &text[..keep_bytes];
    let kept = s.tokenize(cut).len();
    assert!((4090..=4096).contains(&kept), "{kept}");

    let Response::Result { run } = run_on_cpu(&mut s, 0, cut, 1, 2, 256) else { panic!("the cut text did not run") };
    let n = run.report.ids.len();
    assert!(n > EXACT_ROWS_LIMIT);
    assert!(run.report.attention.is_empty(), "no exact rows in a long run's result");
    assert!(run.map.pooled() && run.map.side_q <= 256);
    assert!(run.map.values.iter().all(|v| v.is_finite()));
    let Response::Rows { layer, head, rows } = s.rows(0, 1, 2) else { panic!() };
    assert_eq!((layer, head, rows.len()), (1, 2, n));
    for q in [0, n / 2, n - 1] {
        assert_eq!(rows[q].len(), q + 1);
        assert!((rows[q].iter().sum::<f32>() - 1.0).abs() < 1e-3);
        let Response::Head { map, .. } = s.head(0, 1, 2, 512, Some((q, q + 1)), Some((0, (q + 1).min(512)))) else { panic!() };
        assert_eq!(map.values, rows[q][..map.values.len()], "query {q}");
    }
    // The wire carries the rows as floats, not text.
    let w = attnlab::worker::wire::wire_size(&s.rows(0, 1, 2));
    assert_eq!(w.float_bytes, 4 * n * (n + 1) / 2);
    assert!(w.value_bytes < 20 * n, "{w:?}");
}

/// In the browser the capture must fit beside the model under wasm32's 4 GiB: a Gemma text
/// within its 32 768-token context but beyond that memory is refused early, with numbers.
#[test]
fn wasm_memory_refuses_early_with_numbers() {
    use attnlab::model::tokenizer::Token;
    let mut s = Session::new(Model::from_gguf_vec(std::fs::read(attnlab::GEMMA3_MODEL_PATH).expect("make model fetches Gemma")).unwrap());
    let toks: Vec<Token> = (0..30_000).map(|i| Token { id: 2, start: i * 3, end: i * 3 + 3 }).collect();
    assert!(toks.len() <= s.model.config.context_length);
    let Err(Response::TooLong { n, max, keep_bytes, why }) = s.prepare_run(0, &toks, true) else { panic!("not refused") };
    assert_eq!(n, 30_000);
    assert!(max > 10_000 && max < 30_000, "{max}");
    assert_eq!(keep_bytes, max * 3);
    assert!(why.contains("WebAssembly") && why.contains(&format!("{max} tokens fit")), "{why}");
    // What fits is allowed.
    assert!(s.prepare_run(0, &toks[..max], true).is_ok());
}

/// SmolLM2's whole context through the worker's path on the CPU: finite numbers, the pooled
/// map, and exact rows on request.
#[test]
fn full_context_through_the_session() {
    let mut s = Session::new(common::real_model());
    let text = "In the beginning the committee met on Tuesdays; later, when the budget grew, it met every day. ".repeat(500);
    let Response::TooLong { max, keep_bytes, .. } = run_on_cpu(&mut s, 0, &text, 0, 0, 512) else { panic!("not refused") };
    assert_eq!(max, 8192);
    let Response::Result { run } = run_on_cpu(&mut s, 0, &text[..keep_bytes], 3, 4, 512) else { panic!("the cut text did not run") };
    let n = run.report.ids.len();
    assert!((8185..=8192).contains(&n), "{n}");
    assert!(run.map.pooled() && run.map.side_q <= 512 && run.map.values.iter().all(|v| v.is_finite()));
    assert!(run.report.sink_mass_key0.iter().flatten().all(|m| m.is_some_and(|m| m.is_finite() && (0.0..=1.0).contains(&m))));
    assert!(run.next_tokens.iter().all(|(_, p)| p.is_finite()));
    let Response::Rows { rows, .. } = s.rows(0, 3, 4) else { panic!() };
    assert_eq!(rows.len(), n);
    assert!((rows[n - 1].iter().sum::<f32>() - 1.0).abs() < 1e-3);
}
