//! `attnlab`: tokenize, inspect attention, and benchmark from the command line.
//!
//! ```text
//! attnlab tokenize --text "Hello" --json
//! attnlab inspect --text "The dog chased the cat" --heads 0.0,29.8 --json
//! attnlab bench
//! ```

use std::io::Read;
use std::process::ExitCode;

use attnlab::analysis::report::{inspect, HeadSelection};
use attnlab::backends::engine::Engine;
use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions, LogitsFor};
use attnlab::util::Clock;
use attnlab::{Model, DEFAULT_MODEL_PATH};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "attnlab", version, about = "See where every attention head of a real LLM looks")]
struct Cli {
    /// GGUF model file (Llama family or Gemma 3).
    #[arg(long, global = true, default_value = DEFAULT_MODEL_PATH)]
    model: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Cpu,
    Gpu,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Task {
    /// Key-value retrieval (Liu et al.): which line holds the asked key.
    Kv,
    /// One pass-key sentence at a depth in filler text.
    Passkey,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchWhat {
    Prefill,
    Attention,
    /// Sliding-window vs full attention, Gemma 3's shape (CPU, and the GPU when found).
    Window,
    /// A per-kernel profile of one GPU forward pass (GPU timestamps), at the first `--tokens`.
    Gpu,
    /// Peak resident memory of one CPU run at each `--tokens`, as `inspect --heads none` and
    /// as the worker does it (each size in its own process), with message bytes per run.
    Memory,
    /// One run of `memory` (the child process); `--json` picks the worker's path.
    #[value(hide = true)]
    MemoryOne,
}

#[derive(Subcommand)]
enum Command {
    /// Split text into the model's tokens.
    Tokenize {
        /// The text; `-` reads standard input.
        #[arg(long)]
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// Run the model and report attention, sink mass and next-token logits.
    Inspect {
        /// The text; `-` reads standard input.
        #[arg(long)]
        text: String,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        /// Heads whose full maps are reported: `all`, `none`, or `L.H,L.H`.
        #[arg(long, default_value = "all")]
        heads: String,
        #[arg(long)]
        json: bool,
        /// A text longer than the model's context: keep its first tokens instead of refusing.
        #[arg(long)]
        truncate: bool,
    },
    /// Inside one head: q·k, ÷√d, softmax and the values weighted into the head's output for
    /// one query, with what-ifs (no √d, no causal mask, no RoPE).
    Explain {
        /// The text; `-` reads standard input.
        #[arg(long)]
        text: String,
        #[arg(long)]
        layer: usize,
        #[arg(long)]
        head: usize,
        /// Query position (default: the last token).
        #[arg(long)]
        query: Option<usize>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// Every head's pattern scores (first token, previous token, self, entropy), with
    /// `--similarity` the JS distance between heads, with `--induction` the induction diagnostic.
    Heads {
        /// The text (`-`: standard input); not needed with `--induction`.
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        similarity: bool,
        /// Run the induction diagnostic: P random ids from 1000..=20000, repeated twice.
        #[arg(long)]
        induction: bool,
        #[arg(long, default_value_t = 50)]
        period: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A JSON array of P token ids to repeat instead of random ones.
        #[arg(long)]
        ids: Option<String>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// Knock heads out (their attention output set to zero) and compare the predictions.
    Ablate {
        #[arg(long)]
        text: String,
        /// `L.H,L.H` or a whole layer `L.*`.
        #[arg(long)]
        heads: String,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// Lost in the middle: recall and attention to the answer by its position in the prompt.
    Position {
        #[arg(long, value_enum, default_value = "kv")]
        task: Task,
        /// Key-value lines in the prompt (kv).
        #[arg(long, default_value_t = 40)]
        pairs: usize,
        /// Positions (kv: lines, evenly spaced from first to last; passkey: depths).
        #[arg(long, default_value_t = 5)]
        positions: usize,
        /// Trials per position.
        #[arg(long, default_value_t = 8)]
        trials: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Filler sentences per prompt (passkey), one grid row each.
        #[arg(long, value_delimiter = ',', default_value = "30,60,120")]
        lengths: Vec<usize>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
        /// Write every prompt and its gold answer (JSON lines) so others can re-score them.
        #[arg(long)]
        emit_prompts: Option<String>,
    },
    /// Benchmarks: `prefill` (CPU with 1 and all threads, and the GPU when one is found) or
    /// `attention` (GPU flash vs naive kernels).
    Bench {
        #[arg(value_enum, default_value = "prefill")]
        what: BenchWhat,
        /// Token counts for prefill.
        #[arg(long, value_delimiter = ',', default_value = "128,512")]
        tokens: Vec<usize>,
        /// Sequence lengths for the attention benchmark.
        #[arg(long, value_delimiter = ',', default_value = "512,1024,2048,4096")]
        n: Vec<usize>,
        /// Timed repetitions per configuration (the best is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// `gpu`: the profile as JSON.
        #[arg(long)]
        json: bool,
        /// `gpu`: the matrix-multiplication kernel (`registers`, `workgroup`), or `compare`:
        /// whole forward passes with each, at every `--tokens`, best of `--reps`.
        #[arg(long, default_value = "registers")]
        matmul: String,
    },
}

fn read_text(t: &str) -> Result<String, String> {
    if t == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(s)
    } else {
        Ok(t.to_string())
    }
}

fn load(path: &str) -> Result<(Model, f64), String> {
    let clock = Clock::start();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read model '{path}': {e} (run `make setup` to fetch the default model)"))?;
    let model = Model::from_gguf_vec(bytes).map_err(|e| format!("cannot load '{path}': {e}"))?;
    Ok((model, clock.ms()))
}

/// The engine for `--backend`: the GPU one falls back to the CPU (with a note) if the GPU
/// fails mid-run, through the same path the page's worker uses.
fn backend(choice: BackendChoice) -> Result<Engine, String> {
    match choice {
        BackendChoice::Cpu => Ok(Engine::cpu()),
        BackendChoice::Gpu => match attnlab::backends::gpu::GpuBackend::new() {
            Ok(b) => Ok(Engine::with_gpu(b)),
            Err(e) => Err(format!("{e}; use --backend cpu, or WGPU_BACKEND=vulkan with Mesa's lavapipe (mesa-vulkan-drivers) for a software GPU")),
        },
    }
}

/// Says on stderr when the engine left the GPU.
fn report_fallback(engine: &Engine) {
    if let Some(note) = engine.take_note() {
        eprintln!("attnlab: {note}");
    }
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Tokenize { text, json } => {
            let text = read_text(&text)?;
            let (model, _) = load(&cli.model)?;
            let ids = model.tokenizer.encode(&text);
            let tokens: Vec<String> = ids.iter().map(|&i| model.tokenizer.token_text(i)).collect();
            if json {
                println!("{}", serde_json::json!({ "text": text, "ids": ids, "tokens": tokens }));
            } else {
                for (id, t) in ids.iter().zip(&tokens) {
                    println!("{id:>6}  {t:?}");
                }
                println!("{} tokens", ids.len());
            }
        }
        Command::Inspect { text, backend: choice, heads, json, truncate } => {
            let mut text = read_text(&text)?;
            let heads = HeadSelection::parse(&heads).map_err(|e| e.to_string())?;
            let (model, _) = load(&cli.model)?;
            let max = model.config.context_length;
            let toks = model.tokenizer.encode_with_spans(&text);
            if toks.len() > max {
                if !truncate {
                    return Err(format!("the text has {} tokens, more than this model's context of {max} tokens; nothing was run (--truncate keeps the first {max})", toks.len()));
                }
                let mut cut = toks[max - 1].end.min(text.len());
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                eprintln!("attnlab: the text has {} tokens; kept the first {max} (its first {cut} bytes)", toks.len());
                text.truncate(cut);
            }
            let b = backend(choice)?;
            let report = inspect(&model, &b, &text, &heads).map_err(|e| e.to_string())?;
            report_fallback(&b);
            if json {
                println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
                return Ok(());
            }
            println!("{} — {} tokens on {}", report.model, report.ids.len(), b.describe());
            println!("tokens: {}", report.tokens.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(" "));
            println!("\nnext-token candidates:");
            for (id, logit) in report.last_logits_top.iter().take(8) {
                let p = (logit - report.last_logsumexp).exp();
                println!("  {:>6.2}%  {:?}", p * 100.0, model.tokenizer.token_text(*id));
            }
            let mut sinks: Vec<(usize, usize, f32)> = report
                .sink_mass_key0
                .iter()
                .enumerate()
                .flat_map(|(l, hs)| hs.iter().enumerate().filter_map(move |(h, m)| m.map(|m| (l, h, m))))
                .collect();
            sinks.sort_by(|a, b| b.2.total_cmp(&a.2));
            if !sinks.is_empty() {
                let mean = sinks.iter().map(|s| s.2).sum::<f32>() / sinks.len() as f32;
                println!("\nattention sink (mass on the first token, mean over queries 1..n-1): mean {mean:.3}; strongest heads:");
                for (l, h, m) in sinks.iter().take(8) {
                    println!("  layer {l:>2} head {h}: {m:.3}");
                }
            }
            let t = &report.timings_ms;
            println!("\ntimings: tokenize {:.1} ms, forward {:.1} ms, analysis {:.1} ms", t.tokenize, t.forward, t.analysis);
        }
        Command::Explain { text, layer, head, query, backend: choice, json } => {
            let text = read_text(&text)?;
            let (model, _) = load(&cli.model)?;
            let b = backend(choice)?;
            let e = attnlab::analysis::explain::explain_text(&model, &b, &text, layer, head, query).map_err(|e| e.to_string())?;
            report_fallback(&b);
            if json {
                println!("{}", serde_json::to_string(&e).map_err(|e| e.to_string())?);
                return Ok(());
            }
            println!("layer {} head {} (KV head {}), query {} {:?}, head size {}{}", e.layer, e.head, e.kv_head, e.query, e.tokens[e.query], e.head_dim, e.window.map(|w| format!(", sliding window {w}")).unwrap_or_default());
            println!("| key | token | q·k | ÷√d | softmax | ‖v‖ | ‖p·v‖ | no √d | no mask | no RoPE |");
            println!("|---|---|---|---|---|---|---|---|---|---|");
            for j in 0..=e.query {
                println!("| {j} | {:?} | {:.3} | {:.3} | {:.4} | {:.3} | {:.4} | {:.4} | {:.4} | {:.4} |", e.tokens[j], e.dot[j], e.scores[j], e.probs[j], e.value_norms[j], e.contrib_norms[j], e.probs_unscaled[j], e.probs_unmasked[j], e.probs_no_rope[j]);
            }
            let future = e.probs_unmasked[e.query + 1..].iter().fold(0.0f32, |a, b| a + b);
            println!("
entropy {:.3} nats (no √d: {:.3}; no RoPE: {:.3}); without the mask {:.1}% of the attention goes to future tokens", e.entropy, attnlab::analysis::explain::entropy(&e.probs_unscaled), attnlab::analysis::explain::entropy(&e.probs_no_rope), future * 100.0);
        }
        Command::Heads { text, similarity, induction, period, seed, ids, backend: choice, json } => {
            use attnlab::analysis::heads;
            let (model, _) = load(&cli.model)?;
            let b = backend(choice)?;
            let mut out = serde_json::Map::new();
            if let Some(text) = &text {
                let text = read_text(text)?;
                let s = heads::heads_text(&model, &b, &text, similarity).map_err(|e| e.to_string())?;
                if !json {
                    let c = &model.config;
                    let best = |g: &heads::Grid, name: &str| {
                        println!("top {name} heads: {}", heads::ranked(g).iter().take(6).map(|(l, h, v)| format!("{l}.{h} {v:.3}")).collect::<Vec<_>>().join(", "));
                    };
                    best(&s.first_token, "first-token");
                    best(&s.previous_token, "previous-token");
                    best(&s.self_, "self");
                    if let Some(sim) = heads::similarity(&s, c.n_head) {
                        println!("{}", sim.summary);
                        let name = |i: usize| format!("{}.{}", i / c.n_head, i % c.n_head);
                        for (k, g) in sim.groups.iter().take(5).enumerate() {
                            println!("  group {}: {}", k + 1, g.iter().map(|&i| name(i)).collect::<Vec<_>>().join(" "));
                        }
                    }
                }
                if let serde_json::Value::Object(m) = serde_json::to_value(&s).map_err(|e| e.to_string())? {
                    out.extend(m);
                }
            } else if !induction {
                return Err("heads needs --text, or --induction".into());
            }
            if induction {
                let first: Vec<u32> = match &ids {
                    Some(path) => serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?).map_err(|e| format!("{path}: a JSON array of token ids: {e}"))?,
                    None => heads::random_ids(period, seed),
                };
                if first.is_empty() || first.iter().any(|&id| id as usize >= model.config.vocab_size) {
                    return Err(format!("the induction ids must be 1..{} token ids below {}", model.config.context_length / 2, model.config.vocab_size));
                }
                let r = heads::induction(&model, &b, &first).map_err(|e| e.to_string())?;
                if !json {
                    println!("induction (period {}): {}", r.period, heads::ranked(&r.induction).iter().take(8).map(|(l, h, v)| format!("{l}.{h} {v:.3}")).collect::<Vec<_>>().join(", "));
                }
                out.insert("induction".into(), serde_json::to_value(&r).map_err(|e| e.to_string())?);
            }
            report_fallback(&b);
            if json {
                println!("{}", serde_json::Value::Object(out));
            }
        }
        Command::Ablate { text, heads: list, backend: choice, json } => {
            use attnlab::analysis::heads;
            let text = read_text(&text)?;
            let (model, _) = load(&cli.model)?;
            let b = backend(choice)?;
            let hs = heads::parse_heads(&list, model.config.n_layer, model.config.n_head).map_err(|e| e.to_string())?;
            let a = heads::ablate(&model, &b, &text, &hs).map_err(|e| e.to_string())?;
            report_fallback(&b);
            if json {
                println!("{}", serde_json::to_string(&a).map_err(|e| e.to_string())?);
            } else {
                println!("knocked out: {}; KL(before ‖ after) at the last position: {:.4} nats", a.heads.join(", "), a.kl_last);
                let show = |t: &[(u32, f32)]| t.iter().take(5).map(|(id, l)| format!("{:?} {l:.2}", model.tokenizer.token_text(*id))).collect::<Vec<_>>().join(", ");
                println!("next token before: {}
next token after:  {}", show(&a.last_logits_top_before), show(&a.last_logits_top));
                let tokens: Vec<String> = a.ids.iter().map(|&id| model.tokenizer.token_text(id)).collect();
                for (i, d) in a.delta_logprob.iter().enumerate() {
                    println!("  {:>4} {:?} → {:?}: Δ log p = {d:+.3}", i, tokens[i], tokens[i + 1]);
                }
            }
        }
        Command::Bench { what: BenchWhat::Attention, n, reps, .. } => bench_attention(&n, reps)?,
        Command::Bench { what: BenchWhat::Window, n, reps, .. } => bench_window(&n, reps)?,
        Command::Bench { what: BenchWhat::Memory, tokens, .. } => bench_memory(&cli.model, &tokens)?,
        Command::Bench { what: BenchWhat::MemoryOne, tokens, json, .. } => bench_memory_one(&cli.model, tokens.first().copied().unwrap_or(128), json)?,
        Command::Bench { what: BenchWhat::Gpu, tokens, reps, matmul, .. } if matmul == "compare" => bench_gpu_matmuls(&cli.model, &tokens, reps)?,
        Command::Bench { what: BenchWhat::Gpu, tokens, json, matmul, .. } => {
            let kernel = attnlab::backends::gpu::context::MatmulKernel::parse(&matmul).ok_or_else(|| format!("--matmul {matmul}: expected registers, workgroup or compare"))?;
            bench_gpu(&cli.model, tokens.first().copied().unwrap_or(128), kernel, json)?
        }
        Command::Position { task, pairs, positions, trials, seed, lengths, backend: choice, json, emit_prompts } => {
            use attnlab::analysis::position::{score, summarise, Experiment};
            let (model, _) = load(&cli.model)?;
            let b = backend(choice)?;
            let clock = Clock::start();
            let experiment = Experiment { task: if task == Task::Kv { attnlab::analysis::position::Task::Kv } else { attnlab::analysis::position::Task::Passkey }, pairs, positions, trials, seed, lengths };
            // (prompt size, position index, relative position, trials)
            let groups = experiment.groups().map_err(|e| e.to_string())?;
            if let Some(path) = &emit_prompts {
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
            let mut done = 0;
            let mut rows = vec![];
            for (size, index, relative, ts) in &groups {
                let mut scores = vec![];
                for trial in ts {
                    scores.push(score(&model, &b, trial).map_err(|e| e.to_string())?);
                    report_fallback(&b);
                    done += 1;
                    if !json {
                        eprint!("\r{done}/{total} trials");
                    }
                }
                rows.push((*size, summarise(*index, *relative, &scores)));
            }
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
        }
        Command::Bench { what: BenchWhat::Prefill, tokens, reps, .. } => {
            let (model, load_ms) = load(&cli.model)?;
            println!("model: {} ({:.1} MiB file), load {:.0} ms", model.info.name, model.info.file_bytes as f64 / 1048576.0, load_ms);
            println!("| backend | threads | tokens | best ms | tokens/s |");
            println!("|---|---|---|---|---|");
            // A deterministic text: repeat a sentence until long enough.
            let base = model.tokenizer.encode("The quick brown fox jumps over the lazy dog while the cat watches from the warm window. ");
            let max_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let mut thread_counts = vec![1];
            if max_threads > 1 {
                thread_counts.push(max_threads);
            }
            for &threads in &thread_counts {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| e.to_string())?;
                for &n in &tokens {
                    let ids: Vec<u32> = base.iter().cycle().take(n).copied().collect();
                    let opts = ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, ..Default::default() };
                    let b = CpuBackend::new();
                    let mut best = f64::INFINITY;
                    for _ in 0..reps.max(1) {
                        let out = pool.install(|| b.forward(&model, &ids, &opts)).map_err(|e| e.to_string())?;
                        best = best.min(out.timings.total_ms);
                    }
                    println!("| cpu | {threads} | {n} | {best:.0} | {:.1} |", n as f64 / best * 1e3);
                }
            }
            if let Some(m) = peak_rss_mib() {
                println!("\npeak resident memory after the CPU runs: {m:.0} MiB (model file {:.0} MiB)\n", model.info.file_bytes as f64 / 1048576.0);
            }
            match attnlab::backends::gpu::GpuBackend::new() {
                Ok(gpu) => {
                    let opts = ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, ..Default::default() };
                    gpu.prepare(&model);
                    for &n in &tokens {
                        let ids: Vec<u32> = base.iter().cycle().take(n).copied().collect();
                        gpu.forward(&model, &ids, &opts).map_err(|e| e.to_string())?; // warm-up: pipelines
                        let mut best = f64::INFINITY;
                        for _ in 0..reps.max(1) {
                            best = best.min(gpu.forward(&model, &ids, &opts).map_err(|e| e.to_string())?.timings.total_ms);
                        }
                        println!("| gpu: {} | - | {n} | {best:.0} | {:.1} |", gpu.ctx.describe(), n as f64 / best * 1e3);
                    }
                }
                Err(e) => println!("| gpu | - | - | - | not measured: {e} |"),
            }
            if let Some(m) = peak_rss_mib() {
                println!("\npeak resident memory, GPU runs included: {m:.0} MiB");
            }
        }
    }
    Ok(())
}

/// A text of exactly `n` tokens (or as close as the tokenizer allows): prose repeated, cut
/// at a token's end.
fn text_of(model: &Model, n: usize) -> String {
    let sentence = "The committee reviewed the proposal on Tuesday, and after a long debate about costs, schedules and the risks of delay, it voted to fund the first phase. ";
    let mut text = sentence.repeat(n / 20 + 2);
    let toks = model.tokenizer.encode_with_spans(&text);
    if toks.len() > n {
        text.truncate(toks[n - 1].end);
    }
    text
}

/// `bench memory`: each size in a child process (peak resident memory only grows).
fn bench_memory(model_path: &str, ns: &[usize]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (model, _) = load(model_path)?;
    println!("model: {} ({:.0} MiB file); CPU, {} thread(s)", model.info.name, model.info.file_bytes as f64 / 1048576.0, rayon::current_num_threads());
    println!("| path | tokens | capture MiB | run s | peak resident MiB | result message before: JSON, every row (MiB) | after: value + floats (MiB) |");
    println!("|---|---|---|---|---|---|---|");
    for &n in ns {
        for worker in [false, true] {
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(["--model", model_path, "bench", "memory-one", "--tokens", &n.to_string()]);
            if worker {
                cmd.arg("--json");
            }
            let out = cmd.output().map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !out.status.success() {
                println!("| {} | {n} | failed: {} |", if worker { "worker" } else { "inspect" }, String::from_utf8_lossy(&out.stderr).trim());
                continue;
            }
            println!("{line}");
        }
    }
    Ok(())
}

fn bench_memory_one(model_path: &str, n: usize, worker: bool) -> Result<(), String> {
    use attnlab::model::capture::AttentionTrace;
    use attnlab::worker::session::Session;
    use attnlab::worker::wire::wire_size;
    let (model, _) = load(model_path)?;
    let text = text_of(&model, n);
    let capture = AttentionTrace::bytes_for(&model.config, model.tokenizer.encode(&text).len()) as f64 / 1048576.0;
    let mib = |b: usize| b as f64 / 1048576.0;
    let clock = Clock::start();
    let (path, tokens, wire) = if worker {
        // What the worker does: check and size the run, forward, keep the capture, build the result.
        let mut session = Session::new(model);
        let toks = session.tokenize(&text);
        let opts = session.prepare_run(0, &toks, false).map_err(|r| format!("{r:?}"))?;
        let ids: Vec<u32> = toks.iter().map(|t| t.id).collect();
        let out = CpuBackend::new().forward(&session.model, &ids, &opts).map_err(|e| e.to_string())?;
        let r = session.finish_run(0, &text, &toks, out, "cpu", 0, 0, 512, 0.0, 0.0);
        let peak = peak_rss_mib();
        let w = wire_size(&r);
        // Before: JSON text with the selected head's every row, whatever n (a long run's rows
        // now come only for an export).
        let rows_json = if toks.len() > attnlab::worker::session::EXACT_ROWS_LIMIT { wire_size(&session.rows(0, 0, 0)).json_bytes } else { 0 };
        (format!("worker (result: map + rows ≤ {} tokens)", attnlab::worker::session::EXACT_ROWS_LIMIT), toks.len(), format!("{:.0} | {:.1} | {:.2} + {:.2}", peak.unwrap_or(f64::NAN), mib(w.json_bytes + rows_json), mib(w.value_bytes), mib(w.float_bytes)))
    } else {
        let report = inspect(&model, &CpuBackend::new(), &text, &HeadSelection::List(vec![])).map_err(|e| e.to_string())?;
        ("inspect --heads none".to_string(), report.ids.len(), format!("{:.0} | - | -", peak_rss_mib().unwrap_or(f64::NAN)))
    };
    let secs = clock.ms() / 1e3;
    println!("| {path} | {tokens} | {capture:.0} | {secs:.1} | {wire} |");
    Ok(())
}

/// One GPU forward pass of `n` tokens with every dispatch timed, grouped by kernel.
fn bench_gpu(model_path: &str, n: usize, kernel: attnlab::backends::gpu::context::MatmulKernel, json: bool) -> Result<(), String> {
    use attnlab::backends::gpu::{profile, GpuBackend};
    let (model, _) = load(model_path)?;
    let gpu = GpuBackend::new().map_err(|e| e.to_string())?;
    gpu.prepare(&model);
    gpu.ctx.set_matmul_kernel(kernel);
    let ids = bench_ids(&model, n);
    let opts = ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, ..Default::default() };
    gpu.forward(&model, &ids, &opts).map_err(|e| e.to_string())?; // warm-up: pipelines
    let wall = gpu.forward(&model, &ids, &opts).map_err(|e| e.to_string())?.timings.total_ms;
    if !gpu.ctx.start_profile() {
        return Err(format!("{} offers no timestamp queries: no per-kernel profile (the whole forward pass takes {wall:.1} ms)", gpu.ctx.describe()));
    }
    gpu.forward(&model, &ids, &opts).map_err(|e| e.to_string())?;
    let timed = gpu.ctx.finish_profile().map_err(|e| e.to_string())?;
    let rows = profile::summarise(&timed);
    let gpu_ms: f64 = timed.iter().map(|t| t.ms).sum();
    if json {
        println!("{}", serde_json::json!({ "adapter": gpu.ctx.describe(), "tokens": n, "matmul": kernel.name(), "forward_wall_ms": wall, "kernels_ms": gpu_ms, "dispatches": timed.len(), "rows": rows }));
        return Ok(());
    }
    println!("adapter: {}; {} tokens; matmul kernel: {}; {} dispatches, {gpu_ms:.1} ms of kernels in a {wall:.1} ms forward pass (wall, readback included)", gpu.ctx.describe(), n, kernel.name(), timed.len());
    println!("| kernel | calls | total ms | share | GFLOP/s | GB/s |");
    println!("|---|---|---|---|---|---|");
    let f = |v: Option<f64>| v.map(|v| if v >= 10.0 { format!("{v:.1}") } else { format!("{v:.3}") }).unwrap_or_else(|| "—".into());
    for r in rows {
        println!("| {} | {} | {:.2} | {:.1}% | {} | {} |", r.kernel, r.calls, r.total_ms, 100.0 * r.share, f(r.gflop_per_s), f(r.gb_per_s));
    }
    Ok(())
}

/// `n` token ids of an ordinary English sentence, repeated.
fn bench_ids(model: &Model, n: usize) -> Vec<u32> {
    let base = model.tokenizer.encode("The quick brown fox jumps over the lazy dog while the cat watches from the warm window. ");
    base.iter().cycle().take(n).copied().collect()
}

/// Whole GPU forward passes with each matrix-multiplication kernel, one after the other in
/// one process, best of `reps` after a warm-up each.
fn bench_gpu_matmuls(model_path: &str, ns: &[usize], reps: usize) -> Result<(), String> {
    use attnlab::backends::gpu::{context::MatmulKernel, GpuBackend};
    let (model, _) = load(model_path)?;
    let gpu = GpuBackend::new().map_err(|e| e.to_string())?;
    gpu.prepare(&model);
    let opts = ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, ..Default::default() };
    println!("adapter: {}; whole forward pass (last position's logits), best of {}", gpu.ctx.describe(), reps.max(1));
    println!("| tokens | workgroup ms | registers ms | speed-up | registers tokens/s |");
    println!("|---|---|---|---|---|");
    for &n in ns {
        let ids = bench_ids(&model, n);
        let mut ms = [0.0f64; 2];
        for (i, k) in [MatmulKernel::Workgroup, MatmulKernel::Registers].into_iter().enumerate() {
            gpu.ctx.set_matmul_kernel(k);
            gpu.forward(&model, &ids, &opts).map_err(|e| e.to_string())?; // warm-up: pipelines
            ms[i] = f64::INFINITY;
            for _ in 0..reps.max(1) {
                let clock = Clock::start();
                gpu.forward(&model, &ids, &opts).map_err(|e| e.to_string())?;
                ms[i] = ms[i].min(clock.ms());
            }
        }
        println!("| {n} | {:.1} | {:.1} | {:.2}× | {:.1} |", ms[0], ms[1], ms[0] / ms[1], n as f64 / ms[1] * 1000.0);
    }
    Ok(())
}

/// GPU flash vs naive attention on random inputs shaped like SmolLM2-135M (9 query heads,
/// 3 KV heads, head size 64).
/// Full causal vs 512-token sliding-window attention in Gemma 3 270M's shape (4 query heads,
/// 1 KV head, head size 256): the window makes a local layer's cost O(n·w) instead of O(n²).
fn bench_window(ns: &[usize], reps: usize) -> Result<(), String> {
    use attnlab::backends::cpu::ops::causal_attention;
    use attnlab::backends::gpu::context::GpuContext;
    use attnlab::backends::gpu::ops::{self, AttnShape};
    let (n_head, n_kv, hd, w) = (4usize, 1usize, 256usize, 512usize);
    let gpu = GpuContext::new_blocking().ok();
    println!("CPU: {}; GPU: {}", CpuBackend::new().describe(), gpu.as_ref().map(|c| c.describe()).unwrap_or_else(|| "none found".into()));
    println!("| n | CPU full ms | CPU window {w} ms | CPU ratio | GPU flash full ms | GPU flash window {w} ms | GPU ratio |");
    println!("|---|---|---|---|---|---|---|");
    let fill = |len: usize, seed: u32| -> Vec<f32> { (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) >> 8) as f32 / (1u32 << 24) as f32 - 0.5).collect() };
    for &n in ns {
        let (q, k, v) = (fill(n * n_head * hd, 1), fill(n * n_kv * hd, 2), fill(n * n_kv * hd, 3));
        let best = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<f64, String> {
            let mut best = f64::INFINITY;
            for rep in 0..=reps.max(1) {
                let clock = Clock::start();
                f()?;
                if rep > 0 {
                    best = best.min(clock.ms());
                }
            }
            Ok(best)
        };
        let cpu = |window: Option<usize>| {
            let (mut o, mut lse) = (vec![0.0; q.len()], vec![0.0; n_head * n]);
            best(&mut || {
                causal_attention(AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window }, &q, &k, &v, &mut o, &mut lse);
                Ok(())
            })
        };
        let (cf, cw) = (cpu(None)?, cpu(Some(w))?);
        let (gf, gw) = match &gpu {
            Some(ctx) => {
                let (qb, kb, vb) = (ctx.upload("q", &q), ctx.upload("k", &k), ctx.upload("v", &v));
                let (o, lse) = (ctx.scratch("o", q.len()), ctx.scratch("lse", n_head * n));
                let g = |window: Option<usize>| {
                    best(&mut || {
                        let mut enc = ctx.encoder("bench window");
                        ops::flash_attention(ctx, &mut enc, AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window }, &qb, &kb, &vb, &o, &lse);
                        ctx.submit_and_wait(enc).map_err(|e| e.to_string())
                    })
                };
                let (f, w) = (g(None)?, g(Some(w))?);
                (format!("{f:.1}"), format!("{w:.1} | {:.2}×", f / w))
            }
            None => ("–".into(), "– | –".into()),
        };
        println!("| {n} | {cf:.1} | {cw:.1} | {:.2}× | {gf} | {gw} |", cf / cw);
    }
    Ok(())
}

fn bench_attention(ns: &[usize], reps: usize) -> Result<(), String> {
    use attnlab::backends::gpu::context::GpuContext;
    use attnlab::backends::gpu::ops::{self, AttnShape};
    let ctx = GpuContext::new_blocking().map_err(|e| e.to_string())?;
    println!("adapter: {}", ctx.describe());
    println!("| n | flash ms | naive ms | speed-up | flash GPU scratch (LSE) | naive GPU scratch (S + LSE) | ratio |");
    println!("|---|---|---|---|---|---|---|");
    let (n_head, n_kv, hd) = (9usize, 3usize, 64usize);
    let mib = |b: usize| if b < 1 << 20 { format!("{:.1} KiB", b as f64 / 1024.0) } else { format!("{:.1} MiB", b as f64 / 1048576.0) };
    for &n in ns {
        let fill = |len: usize, seed: u32| -> Vec<f32> { (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) >> 8) as f32 / (1u32 << 24) as f32 - 0.5).collect() };
        let shape = AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window: None };
        let (q, k, v) = (ctx.upload("q", &fill(n * n_head * hd, 1)), ctx.upload("k", &fill(n * n_kv * hd, 2)), ctx.upload("v", &fill(n * n_kv * hd, 3)));
        let (o, lse) = (ctx.scratch("o", n * n_head * hd), ctx.scratch("lse", n_head * n));
        let s_bytes = ops::naive_scratch_bytes(&ctx, shape);
        let s = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("S"), size: s_bytes as u64, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
        let time = |flash: bool| -> Result<f64, String> {
            let mut best = f64::INFINITY;
            for rep in 0..=reps.max(1) {
                let mut enc = ctx.encoder("bench attention");
                if flash {
                    ops::flash_attention(&ctx, &mut enc, shape, &q, &k, &v, &o, &lse);
                } else {
                    ops::naive_attention(&ctx, &mut enc, shape, &q, &k, &v, &o, &lse, &s);
                }
                let clock = Clock::start();
                ctx.submit_and_wait(enc).map_err(|e| e.to_string())?;
                if rep > 0 {
                    best = best.min(clock.ms()); // rep 0 warms up (pipeline build)
                }
            }
            Ok(best)
        };
        let (tf, tn) = (time(true)?, time(false)?);
        // Beyond its inputs and output O, flash writes only the per-row LSE to GPU memory
        // (naive writes it too); its K/V tiles live in 8 KiB of on-chip workgroup memory.
        // Naive materialises S for `heads per pass` heads at once.
        let lse_bytes = n_head * n * 4;
        let naive_scratch = s_bytes + lse_bytes;
        let all_heads = n_head * n * n * 4;
        println!(
            "| {n} | {tf:.1} | {tn:.1} | {:.2}× | {} | {} ({} heads/pass; all heads: {}) | {:.0}× |",
            tn / tf,
            mib(lse_bytes),
            mib(naive_scratch),
            ops::naive_heads_per_pass(&ctx, shape),
            mib(all_heads),
            naive_scratch as f64 / lse_bytes as f64
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attnlab: {e}");
            ExitCode::FAILURE
        }
    }
}
