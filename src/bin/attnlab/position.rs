//! `attnlab position`: lost in the middle, recall and attention by the answer's position.

use attnlab::backends::Backend;
use attnlab::util::Clock;

use crate::common::{backend, load};
use crate::{BackendChoice, Task};

/// Trials counted on stderr (unless the output is JSON); the GPU fallback said there too.
struct Trials {
    quiet: bool,
}

impl attnlab::flows::Progress for Trials {
    fn step(&self, _: &str, done: f64, total: Option<f64>) {
        if !self.quiet && done > 0.0 {
            eprint!("\r{done}/{} trials", total.unwrap_or(done));
        }
    }
    fn note(&self, note: &str) {
        eprintln!("attnlab: {note}");
    }
}

#[allow(clippy::too_many_arguments)]
pub fn run(model_path: &str, task: Task, pairs: usize, positions: usize, trials: usize, seed: u64, lengths: Vec<usize>, choice: BackendChoice, json: bool, emit_prompts: Option<&str>) -> Result<(), String> {
    use attnlab::analysis::position::Experiment;
    let (model, _) = load(model_path)?;
    let b = backend(choice)?;
    let clock = Clock::start();
    let experiment = Experiment { task: if task == Task::Kv { attnlab::analysis::position::Task::Kv } else { attnlab::analysis::position::Task::Passkey }, pairs, positions, trials, seed, lengths };
    // (prompt size, position index, relative position, trials)
    let groups = experiment.groups().map_err(|e| e.to_string())?;
    if let Some(path) = emit_prompts {
        let mut lines = String::new();
        for (size, index, _, ts) in &groups {
            for (t, trial) in ts.iter().enumerate() {
                lines.push_str(&serde_json::json!({ "size": size, "position": index, "trial": t, "prompt": trial.prompt, "gold": trial.gold }).to_string());
                lines.push('\n');
            }
        }
        std::fs::write(path, lines).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    let total: usize = groups.iter().map(|g| g.3.len()).sum();
    let swept = pollster::block_on(attnlab::flows::experiment(&b, &model, &experiment, &Trials { quiet: json })).map_err(|e| e.to_string())?;
    let rows: Vec<(usize, _)> = swept.rows.into_iter().map(|r| (r.size, r.summary)).collect();
    if !json {
        eprintln!();
    }
    let elapsed = clock.ms();
    if json {
        let positions: Vec<_> = rows.iter().map(|(size, s)| serde_json::json!({ "size": size, "summary": s })).collect();
        // `experiment` and `rows` are what the page reads (a shipped or `result-src` figure).
        println!("{}", serde_json::json!({ "task": if task == Task::Kv { "kv" } else { "passkey" }, "pairs": pairs, "trials": trials, "seed": seed, "backend": b.name(), "positions": positions, "elapsed_ms": elapsed, "experiment": experiment, "rows": positions }));
    } else {
        println!("| {} | position | relative | mean gold log-prob | std | accuracy | attention to gold (mean over layers) | tokens |", if task == Task::Kv { "pairs" } else { "sentences" });
        println!("|---|---|---|---|---|---|---|---|");
        for (size, s) in &rows {
            let att = s.attention_to_gold.iter().sum::<f32>() / s.attention_to_gold.len().max(1) as f32;
            println!("| {size} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.0} |", s.index, s.relative, s.mean_logprob, s.std_logprob, s.accuracy, att, s.mean_tokens);
        }
        println!("\n{total} trials in {:.1} s on {}", elapsed / 1e3, b.describe());
    }
    Ok(())
}
