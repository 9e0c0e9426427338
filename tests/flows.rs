//! The flows the worker, the CLI and the tests share (`attnlab::flows`), natively on a CPU
//! engine: progress counts every step and ends at the total; a Cancel after k steps stops with
//! exactly the k rows done and says it was cancelled; the induction flow repeats its random
//! half and finds the same grid as the analysis function on that pass.

mod common;

use attnlab::analysis::position::{Experiment, Task};
use attnlab::backends::engine::Engine;
use attnlab::flows::{self, Progress};
use std::cell::{Cell, RefCell};

/// Records every step; cancels once `stop_after` steps (counted by `done`) were reported.
struct Recorder {
    steps: RefCell<Vec<(String, f64, Option<f64>)>>,
    stop_after: Option<f64>,
    pauses: Cell<usize>,
}

impl Recorder {
    fn new(stop_after: Option<f64>) -> Self {
        Recorder { steps: RefCell::new(vec![]), stop_after, pauses: Cell::new(0) }
    }
}

impl Progress for Recorder {
    fn step(&self, phase: &str, done: f64, total: Option<f64>) {
        self.steps.borrow_mut().push((phase.into(), done, total));
    }
    fn cancelled(&self) -> bool {
        self.stop_after.is_some_and(|k| self.steps.borrow().last().is_some_and(|s| s.1 >= k))
    }
    fn pause(&self) -> impl std::future::Future<Output = ()> {
        self.pauses.set(self.pauses.get() + 1);
        std::future::ready(())
    }
}

#[test]
fn the_experiment_counts_every_trial_and_stops_on_cancel() {
    let model = common::real_model();
    let engine = Engine::cpu();
    let e = Experiment { task: Task::Kv, pairs: 4, positions: 2, trials: 2, seed: 7, lengths: vec![] };
    let all = Recorder::new(None);
    let done = pollster::block_on(flows::experiment(&engine, &model, &e, &all)).unwrap();
    assert!(!done.cancelled && done.rows.len() == 2, "{} rows", done.rows.len());
    let steps = all.steps.borrow();
    assert_eq!(steps.first().map(|s| s.1), Some(0.0));
    assert_eq!(steps.last().map(|s| (s.1, s.2)), Some((4.0, Some(4.0))), "four trials");
    assert_eq!(all.pauses.get(), 4, "a pause before each trial");
    // Cancelled after the first trial: one row, from that one trial.
    let one = Recorder::new(Some(1.0));
    let part = pollster::block_on(flows::experiment(&engine, &model, &e, &one)).unwrap();
    assert!(part.cancelled && part.rows.len() == 1);
    assert_eq!(part.rows[0].summary.index, done.rows[0].summary.index);
}

#[test]
fn the_cost_sweep_and_induction_on_a_cpu_engine() {
    // A context of 1 024 tokens: the sweep measures several sizes up to it.
    let model = attnlab::Model::from_gguf_bytes(&common::tiny_model_bytes(&common::TinySpec { context: 1024, ..Default::default() })).unwrap();
    let engine = Engine::cpu();
    let all = Recorder::new(None);
    let swept = pollster::block_on(flows::cost(&engine, &model, 1024, &all)).unwrap();
    assert!(!swept.cancelled && swept.rows.len() >= 3, "{} sizes", swept.rows.len());
    assert_eq!(all.steps.borrow().last().map(|s| (s.1, s.2)), Some((swept.rows.len() as f64, Some(swept.rows.len() as f64))));
    let two = Recorder::new(Some(2.0));
    let part = pollster::block_on(flows::cost(&engine, &model, 1024, &two)).unwrap();
    assert!(part.cancelled && part.rows.len() == 2);

    let (ind, trace) = pollster::block_on(flows::induction(&engine, &model, 12, 3, &flows::Silent)).unwrap();
    assert_eq!(ind.ids.len(), 24);
    assert_eq!(ind.ids[..12], ind.ids[12..]);
    assert_eq!(ind.induction, attnlab::analysis::heads::induction_grid(&trace, 12));
}
