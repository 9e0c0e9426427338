//! Lost-in-the-middle protocol: prompts, answer location, scoring, and a small real run.

mod common;

use attnlab::analysis::position::{kv_pairs, kv_trial, kv_trials, locate, passkey_trial, score, spaced, summarise, Rng};
use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions};
use attnlab::Model;

#[test]
fn keys_are_distinct_five_letter_words_with_four_digit_values() {
    let mut rng = Rng::new(7);
    let pairs = kv_pairs(&mut rng, 300);
    let keys: std::collections::HashSet<_> = pairs.iter().map(|p| p.0.clone()).collect();
    assert_eq!(keys.len(), 300);
    for (k, v) in &pairs {
        assert!(k.len() == 5 && k.chars().all(|c| c.is_ascii_lowercase()), "{k}");
        assert!(v.len() == 4 && v.chars().all(|c| c.is_ascii_digit()) && !v.starts_with('0'), "{v}");
    }
    // Seeded: the same seed gives the same prompts.
    assert_eq!(kv_trials(10, 3, 2, 5).unwrap(), kv_trials(10, 3, 2, 5).unwrap());
    assert_ne!(kv_trials(10, 3, 2, 5).unwrap(), kv_trials(10, 3, 2, 6).unwrap());
    assert_eq!(spaced(39, 5), vec![0, 10, 20, 29, 39]);
    assert_eq!(spaced(9, 1), vec![0]);
}

#[test]
fn the_gold_line_is_located_exactly_in_tokens() {
    let model = common::real_model();
    let mut rng = Rng::new(1);
    let pairs = kv_pairs(&mut rng, 12);
    for target in [0, 5, 11] {
        let t = kv_trial(&pairs, target);
        assert!(t.prompt.starts_with("Here is a list of keys and values.\n"));
        assert!(t.prompt.ends_with(&format!("The value of key {} is", pairs[target].0)));
        assert_eq!(&t.prompt[t.gold_line.0..t.gold_line.1], format!("{}: {}", pairs[target].0, pairs[target].1));
        let (toks, n_prompt, line) = locate(&model, &t).unwrap();
        let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
        assert_eq!(model.tokenizer.decode(&ids[line.clone()]).unwrap(), format!("{}: {}", pairs[target].0, pairs[target].1));
        assert_eq!(model.tokenizer.decode(&ids[n_prompt..]).unwrap(), t.gold);
        assert_eq!(model.tokenizer.decode(&ids[..n_prompt]).unwrap(), t.prompt);
    }
    let mut rng = Rng::new(2);
    let p = passkey_trial(&mut rng, 20, 10);
    let (toks, _, line) = locate(&model, &p).unwrap();
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    // The needle's first token carries the space before it (" The").
    assert!(model.tokenizer.decode(&ids[line]).unwrap().trim_start().starts_with("The pass key is"));
}

#[test]
fn scoring_equals_a_hand_computation() {
    let model = Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec { context: 512, ..Default::default() })).unwrap();
    let pairs = vec![("abcde".to_string(), "1234".to_string()), ("fghij".to_string(), "5678".to_string()), ("klmno".to_string(), "9012".to_string())];
    let trial = kv_trial(&pairs, 1);
    let s = score(&model, &CpuBackend::new(), &trial).unwrap();
    // By hand: one forward with every logit and every attention row.
    let (toks, n_prompt, line) = locate(&model, &trial).unwrap();
    let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
    let out = CpuBackend::new().forward(&model, &ids, &ForwardOptions::default()).unwrap();
    let mut lp = 0.0f64;
    let mut exact = true;
    for p in n_prompt - 1..ids.len() - 1 {
        let row = out.logits_at(p).unwrap();
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|v| (*v as f64 - m).exp()).sum();
        lp += row[ids[p + 1] as usize] as f64 - m - z.ln();
        let arg = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        exact &= arg == ids[p + 1] as usize;
    }
    assert!((s.gold_logprob as f64 - lp).abs() < 1e-3, "{} vs {lp}", s.gold_logprob);
    assert_eq!(s.exact_match, exact);
    let trace = out.trace.unwrap();
    for l in 0..trace.n_layer {
        let by_hand: f32 = (0..trace.n_head).map(|h| trace.row(l, h, n_prompt - 1).unwrap()[line.clone()].iter().sum::<f32>()).sum::<f32>() / trace.n_head as f32;
        assert!((s.attention_to_gold[l] - by_hand).abs() < 1e-5);
    }
    let sum = summarise(1, 0.5, &[s.clone(), s.clone()]);
    assert_eq!(sum.std_logprob, 0.0);
    assert_eq!(sum.mean_logprob, s.gold_logprob);
}

#[test]
fn a_small_real_run_shows_primacy() {
    // 10 pairs, first / middle / last line, 2 trials each: the first line is recalled better
    // than the middle one (the left arm of the U).
    let model = common::real_model();
    let groups = kv_trials(10, 3, 2, 0).unwrap();
    let cpu = CpuBackend::new();
    let means: Vec<f32> = groups
        .iter()
        .map(|(line, ts)| {
            let scores: Vec<_> = ts.iter().map(|t| score(&model, &cpu, t).unwrap()).collect();
            summarise(*line, 0.0, &scores).mean_logprob
        })
        .collect();
    assert!(means[0] > means[1], "first {} vs middle {}", means[0], means[1]);
}
