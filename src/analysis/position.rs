//! Lost-in-the-middle experiments (after Liu et al., 2023), sized for a small model.
//!
//! Key-value retrieval: a list of `key: value` lines, then "The value of key K is"; the
//! answer is the line's 4-digit value. Pass key: one needle sentence at some depth in filler
//! text. Each trial is scored without sampling or a judge:
//! - the teacher-forced log-probability of the gold answer's tokens (summed),
//! - exact match: the argmax at every answer position is the gold token (what greedy
//!   decoding would produce),
//! - the attention mass from the last prompt token onto the gold line's tokens, per layer,
//!   averaged over heads — recomputed from the forward pass's log-sum-exp capture.

use crate::backends::{Backend, EngineError, ForwardOptions, LogitsFor};
use crate::model::tokenizer::Token;
use crate::Model;

use super::report::log_sum_exp;

#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("bad experiment settings: {0}")]
    Settings(String),
    #[error("the answer's first token merges with the prompt's last one; the protocol cannot score it")]
    Boundary,
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small seeded generator, so a run is
/// reproducible everywhere (the experiments' trials and the sampling of generated text).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in [0, 1): the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One prompt with its answer and where the relevant line lies.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Trial {
    pub prompt: String,
    /// The gold continuation, e.g. " 4821".
    pub gold: String,
    /// Byte range of the relevant line (or needle sentence) in `prompt`.
    pub gold_line: (usize, usize),
    /// Which line (kv) or depth step (pass key) holds the answer.
    pub position: usize,
}

/// `n` distinct random 5-letter lowercase keys with random 4-digit values.
pub fn kv_pairs(rng: &mut Rng, n: usize) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let key: String = (0..5).map(|_| (b'a' + rng.below(26) as u8) as char).collect();
        if seen.insert(key.clone()) {
            out.push((key, format!("{}", 1000 + rng.below(9000))));
        }
    }
    out
}

/// The key-value retrieval prompt asking for the key on line `target`.
pub fn kv_trial(pairs: &[(String, String)], target: usize) -> Trial {
    let mut prompt = String::from("Here is a list of keys and values.\n");
    let mut gold_line = (0, 0);
    for (i, (k, v)) in pairs.iter().enumerate() {
        let start = prompt.len();
        prompt.push_str(&format!("{k}: {v}"));
        if i == target {
            gold_line = (start, prompt.len());
        }
        prompt.push('\n');
    }
    prompt.push_str(&format!("The value of key {} is", pairs[target].0));
    Trial { prompt, gold: format!(" {}", pairs[target].1), gold_line, position: target }
}

const FILLER: [&str; 5] = ["The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again."];

/// The pass-key prompt: `sentences` filler sentences with the needle after `depth` of them.
pub fn passkey_trial(rng: &mut Rng, sentences: usize, depth: usize) -> Trial {
    let key = format!("{}", 10000 + rng.below(90000));
    let mut prompt = String::new();
    let mut gold_line = (0, 0);
    for i in 0..=sentences {
        if i == depth.min(sentences) {
            let start = prompt.len();
            prompt.push_str(&format!("The pass key is {key}. Remember it."));
            gold_line = (start, prompt.len());
            prompt.push(' ');
        }
        if i < sentences {
            prompt.push_str(FILLER[i % FILLER.len()]);
            prompt.push(' ');
        }
    }
    prompt.push_str("What is the pass key? The pass key is");
    Trial { prompt, gold: format!(" {key}"), gold_line, position: depth }
}

/// Evenly spaced indices from 0 to `last`, `count` of them (deduplicated).
pub fn spaced(last: usize, count: usize) -> Vec<usize> {
    if count <= 1 || last == 0 {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..count).map(|k| ((k * last) as f64 / (count - 1) as f64).round() as usize).collect();
    v.dedup();
    v
}

/// How one trial scored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrialScore {
    pub gold_logprob: f32,
    pub exact_match: bool,
    /// Per layer, mean over heads: attention mass from the last prompt token onto the gold line.
    pub attention_to_gold: Vec<f32>,
    pub n_tokens: usize,
}

/// Token indices of `toks` overlapping byte range `r`.
fn tokens_in(toks: &[Token], r: (usize, usize)) -> std::ops::Range<usize> {
    let first = toks.iter().position(|t| t.end > r.0).unwrap_or(toks.len());
    let last = toks.iter().rposition(|t| t.start < r.1).map(|i| i + 1).unwrap_or(first);
    first..last.max(first)
}

/// Locates the answer: (prompt token count, gold token ids, gold line token range).
pub fn locate(model: &Model, trial: &Trial) -> Result<(Vec<Token>, usize, std::ops::Range<usize>), PositionError> {
    let text = format!("{}{}", trial.prompt, trial.gold);
    let toks = model.tokenizer.encode_with_spans(&text);
    let cut = trial.prompt.len();
    let n_prompt = toks.iter().take_while(|t| t.end <= cut).count();
    if toks.get(n_prompt).map(|t| t.start != cut).unwrap_or(true) {
        return Err(PositionError::Boundary);
    }
    let line = tokens_in(&toks, trial.gold_line);
    Ok((toks, n_prompt, line))
}

/// A trial ready to run: ids of prompt + answer, where the answer and the gold line are.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub ids: Vec<u32>,
    pub n_prompt: usize,
    pub line: std::ops::Range<usize>,
}

impl Prepared {
    pub fn new(model: &Model, trial: &Trial) -> Result<Prepared, PositionError> {
        let (toks, n_prompt, line) = locate(model, trial)?;
        if n_prompt == 0 {
            return Err(PositionError::Settings("empty prompt".into()));
        }
        Ok(Prepared { ids: toks.iter().map(|t| t.id).collect(), n_prompt, line })
    }

    /// Logits at the last prompt token and every answer token but the last predict the answer.
    pub fn logit_positions(&self) -> Vec<usize> {
        (self.n_prompt - 1..self.ids.len() - 1).collect()
    }

    /// The forward options the scoring needs.
    pub fn options(&self) -> ForwardOptions {
        ForwardOptions { capture_attention: true, logits_for: LogitsFor::Positions(self.logit_positions()), ..Default::default() }
    }

    /// Scores a finished forward pass over `self.ids` run with [`Prepared::options`].
    pub fn score(&self, out: &crate::backends::ForwardOutput) -> TrialScore {
        let mut logprob = 0f32;
        let mut exact = true;
        for (k, &p) in self.logit_positions().iter().enumerate() {
            let row = out.logits.row(k);
            let row = row.as_slice().expect("contiguous");
            let gold = self.ids[p + 1] as usize;
            logprob += row[gold] - log_sum_exp(row);
            let argmax = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
            exact &= argmax == gold;
        }
        let trace = out.trace.as_ref().expect("capture requested");
        let q = self.n_prompt - 1;
        let attention_to_gold = (0..trace.n_layer)
            .map(|l| {
                let heads: Vec<f32> = (0..trace.n_head).filter_map(|h| trace.span_mass(l, h, [q], self.line.clone()).ok().flatten()).collect();
                heads.iter().sum::<f32>() / heads.len().max(1) as f32
            })
            .collect();
        TrialScore { gold_logprob: logprob, exact_match: exact, attention_to_gold, n_tokens: self.ids.len() }
    }
}

/// Scores one trial with one forward pass (prompt and answer together, teacher forcing).
pub fn score(model: &Model, backend: &dyn Backend, trial: &Trial) -> Result<TrialScore, PositionError> {
    let prep = Prepared::new(model, trial)?;
    let out = backend.forward(model, &prep.ids, &prep.options())?;
    Ok(prep.score(&out))
}

/// Summary of the trials at one position.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionSummary {
    /// Line index (kv) or needle depth in filler sentences (pass key).
    pub index: usize,
    /// 0 = first line / start, 1 = last line / end.
    pub relative: f32,
    pub mean_logprob: f32,
    pub std_logprob: f32,
    pub accuracy: f32,
    /// Per layer: mean attention mass from the last prompt token onto the gold line.
    pub attention_to_gold: Vec<f32>,
    pub trials: usize,
    pub mean_tokens: f32,
}

pub fn summarise(index: usize, relative: f32, scores: &[TrialScore]) -> PositionSummary {
    let n = scores.len().max(1) as f32;
    let mean = scores.iter().map(|s| s.gold_logprob).sum::<f32>() / n;
    let var = scores.iter().map(|s| (s.gold_logprob - mean).powi(2)).sum::<f32>() / n;
    let layers = scores.first().map(|s| s.attention_to_gold.len()).unwrap_or(0);
    let attention_to_gold = (0..layers).map(|l| scores.iter().map(|s| s.attention_to_gold[l]).sum::<f32>() / n).collect();
    PositionSummary {
        index,
        relative,
        mean_logprob: mean,
        std_logprob: var.sqrt(),
        accuracy: scores.iter().filter(|s| s.exact_match).count() as f32 / n,
        attention_to_gold,
        trials: scores.len(),
        mean_tokens: scores.iter().map(|s| s.n_tokens as f32).sum::<f32>() / n,
    }
}

/// The kv experiment's prompts: for each of `positions` evenly spaced lines, `trials` seeded
/// trials (each with fresh keys and values).
pub fn kv_trials(pairs: usize, positions: usize, trials: usize, seed: u64) -> Result<Vec<(usize, Vec<Trial>)>, PositionError> {
    if pairs == 0 || positions == 0 || trials == 0 {
        return Err(PositionError::Settings("pairs, positions and trials must be at least 1".into()));
    }
    Ok(spaced(pairs - 1, positions)
        .into_iter()
        .map(|target| {
            let ts = (0..trials)
                .map(|t| {
                    let mut rng = Rng::new(seed ^ ((target as u64) << 32) ^ t as u64);
                    kv_trial(&kv_pairs(&mut rng, pairs), target)
                })
                .collect();
            (target, ts)
        })
        .collect())
}

/// The pass-key grid's prompts: (sentences, depth index, trials).
pub fn passkey_trials(lengths: &[usize], depths: usize, trials: usize, seed: u64) -> Vec<(usize, usize, Vec<Trial>)> {
    let mut out = vec![];
    for &sentences in lengths {
        for depth in spaced(sentences, depths) {
            let ts = (0..trials)
                .map(|t| {
                    let mut rng = Rng::new(seed ^ ((sentences as u64) << 40) ^ ((depth as u64) << 20) ^ t as u64);
                    passkey_trial(&mut rng, sentences, depth)
                })
                .collect();
            out.push((sentences, depth, ts));
        }
    }
    out
}

/// Which experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Kv,
    Passkey,
}

/// An experiment's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Experiment {
    pub task: Task,
    /// kv: lines in the prompt.
    pub pairs: usize,
    /// kv: lines tested; passkey: depths per length.
    pub positions: usize,
    pub trials: usize,
    pub seed: u64,
    /// passkey: filler sentences per prompt.
    pub lengths: Vec<usize>,
}

/// One row of results: prompt size (pairs or sentences) and the position's summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResultRow {
    pub size: usize,
    pub summary: PositionSummary,
}

impl Experiment {
    /// All trials, grouped: (size, position index, relative position, trials).
    pub fn groups(&self) -> Result<Vec<(usize, usize, f32, Vec<Trial>)>, PositionError> {
        Ok(match self.task {
            Task::Kv => kv_trials(self.pairs, self.positions, self.trials, self.seed)?
                .into_iter()
                .map(|(line, ts)| (self.pairs, line, line as f32 / (self.pairs.max(2) - 1) as f32, ts))
                .collect(),
            Task::Passkey => {
                if self.lengths.is_empty() || self.positions == 0 || self.trials == 0 {
                    return Err(PositionError::Settings("lengths, positions and trials must be given".into()));
                }
                passkey_trials(&self.lengths, self.positions, self.trials, self.seed).into_iter().map(|(len, depth, ts)| (len, depth, depth as f32 / len.max(1) as f32, ts)).collect()
            }
        })
    }
}
