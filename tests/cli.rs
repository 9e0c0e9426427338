//! The `attnlab` binary end to end on the real model: the JSON contract of `tokenize` and
//! `inspect`, stdin input, and clear failures.

use std::io::Write;
use std::process::{Command, Stdio};

fn attnlab(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attnlab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn tokenize_json_from_stdin() {
    let (ok, out, err) = attnlab(&["tokenize", "--text", "-", "--json"], Some("Hello, world!"));
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["text"], "Hello, world!");
    assert_eq!(v["ids"], serde_json::json!([19556, 28, 905, 17]));
    assert_eq!(v["tokens"], serde_json::json!(["Hello", ",", " world", "!"]));
}

#[test]
fn inspect_json_has_the_documented_schema() {
    let (ok, out, err) = attnlab(&["inspect", "--text", "The dog chased the cat because it was hungry.", "--heads", "0.0,29.8", "--json"], None);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = v["ids"].as_array().unwrap().len();
    assert_eq!(n, 10);
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["tokens"].as_array().unwrap().len(), n);
    let att = v["attention"].as_object().unwrap();
    assert_eq!(att.keys().collect::<Vec<_>>(), vec!["0.0", "29.8"]);
    for rows in att.values() {
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), n);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_array().unwrap();
            assert_eq!(r.len(), i + 1);
            let sum: f64 = r.iter().map(|x| x.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-4, "row {i} sums to {sum}");
        }
    }
    assert_eq!(v["sink_mass_key0"].as_array().unwrap().len(), 30);
    assert_eq!(v["sink_mass_key0"][0].as_array().unwrap().len(), 9);
    let top = v["last_logits_top"].as_array().unwrap();
    assert_eq!(top.len(), 64);
    assert!(top[0][1].as_f64().unwrap() >= top[63][1].as_f64().unwrap());
    assert_eq!(v["argmax_per_position"].as_array().unwrap().len(), n);
    assert!(v["timings_ms"]["forward"].as_f64().unwrap() > 0.0);
}

#[test]
fn readable_summary_and_clear_errors() {
    let (ok, out, _) = attnlab(&["inspect", "--text", "Hello, world!", "--heads", "none"], None);
    assert!(ok);
    assert!(out.contains("next-token candidates") && out.contains("attention sink"), "{out}");

    let (ok, _, err) = attnlab(&["inspect", "--text", "", "--json"], None);
    assert!(!ok && err.contains("empty"), "{err}");
    let (ok, _, err) = attnlab(&["inspect", "--text", "hi", "--heads", "0-0"], None);
    assert!(!ok && err.contains("bad head selection"), "{err}");
    let (ok, _, err) = attnlab(&["inspect", "--text", "hi", "--model", "Cargo.toml"], None);
    assert!(!ok && err.contains("not a GGUF file"), "{err}");
    let (ok, _, err) = attnlab(&["inspect", "--text", "hi", "--model", "no/such.gguf"], None);
    assert!(!ok && err.contains("make setup"), "{err}");
}

#[test]
fn every_command_takes_gemma_with_model() {
    let gemma = attnlab::GEMMA3_MODEL_PATH;
    let (ok, out, err) = attnlab(&["--model", gemma, "tokenize", "--text", "Hello, world!", "--json"], None);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ids"], serde_json::json!([2, 9259, 236764, 1902, 236888]));
    let (ok, out, err) = attnlab(&["--model", gemma, "inspect", "--text", "The dog chased the cat because it was hungry.", "--heads", "5.1", "--json"], None);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["n_layers"].as_u64(), v["n_heads"].as_u64(), v["n_kv_heads"].as_u64()), (Some(18), Some(4), Some(1)));
    assert_eq!(v["argmax_per_position"].as_array().unwrap().len(), 11);
    let (ok, out, err) = attnlab(&["--model", gemma, "position", "--pairs", "4", "--positions", "2", "--trials", "1", "--json"], None);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);
}

/// A text beyond the context is refused with the limit and the way out; `--truncate` runs the
/// model's whole context (8192 tokens) with finite numbers.
#[test]
fn full_context_or_a_clear_refusal() {
    let text = "In the beginning the committee met on Tuesdays; later, when the budget grew, it met every day. ".repeat(500);
    let (ok, _, err) = attnlab(&["inspect", "--text", "-", "--heads", "none"], Some(&text));
    assert!(!ok && err.contains("more than this model's context of 8192 tokens") && err.contains("--truncate"), "{err}");
    let (ok, out, err) = attnlab(&["inspect", "--text", "-", "--heads", "none", "--json", "--truncate"], Some(&text));
    assert!(ok, "{err}");
    assert!(err.contains("kept the first 8192"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = v["ids"].as_array().unwrap().len();
    assert!((8185..=8192).contains(&n), "{n}");
    assert!(v["last_logsumexp"].as_f64().unwrap().is_finite());
    assert!(v["sink_mass_key0"].as_array().unwrap().iter().flat_map(|l| l.as_array().unwrap()).all(|m| m.as_f64().is_some_and(|m| (0.0..=1.0).contains(&m))));
}

/// The commands of the articles' claims and of the vectors: `vectors`, `qk`, `compare` print
/// their documented JSON; `generate --policy` / `--what` write under them (and refuse nonsense
/// in words).
#[test]
fn vectors_qk_compare_and_writing_under_a_variant() {
    let json = |args: &[&str]| -> serde_json::Value {
        let (ok, out, err) = attnlab(args, None);
        assert!(ok, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    let v = json(&["vectors", "--text", "She sat on the bank of the river.", "--other", "She deposited cash at the bank.", "--json"]);
    assert_eq!(v["cosine"].as_array().unwrap().len(), 31);
    assert_eq!((v["a"]["at"].as_u64(), v["b"]["at"].as_u64()), (Some(4), Some(5)));
    assert_eq!(v["a"]["nearest"].as_array().unwrap().len(), 30);
    let q = json(&["qk", "--text", "The dog chased the cat because it was hungry.", "--layer", "15", "--head", "0", "--json"]);
    assert_eq!((q["queries"].as_array().unwrap().len(), q["keys"].as_array().unwrap().len()), (10, 10));
    let c = json(&["compare", "--text", "The trophy didn't fit in the suitcase because it was too big.", "--other", "The trophy didn't fit in the suitcase because it was too small.", "--json"]);
    assert_eq!((c["from"].as_u64(), c["to"].as_u64(), c["heads"].as_array().unwrap().len()), (Some(13), Some(15), 270));
    let g = json(&["generate", "--text", "The capital of France is", "--max-tokens", "4", "--policy", "no-key0", "--json"]);
    assert_eq!(g["generated"].as_array().unwrap().len(), 4);
    let (ok, _, err) = attnlab(&["generate", "--text", "Hi", "--policy", "lru"], None);
    assert!(!ok && err.contains("--policy lru: one of dense, window, sinks+window, no-key0"), "{err}");
    let (ok, _, err) = attnlab(&["generate", "--text", "Hi", "--what", "unscaled", "--layers", "40"], None);
    assert!(!ok && err.contains("this model has layers 0 to 29"), "{err}");
    let (ok, _, err) = attnlab(&["vectors", "--text", "a b c", "--other", "d e f"], None);
    assert!(!ok && err.contains("\"bank\" is not a token of --text"), "{err}");
}
