//! `attnlab`: tokenize, inspect attention, and benchmark from the command line.
//!
//! ```text
//! attnlab tokenize --text "Hello" --json
//! attnlab inspect --text "The dog chased the cat" --heads 0.0,29.8 --json
//! attnlab generate --text "What is the capital of France?" --chat
//! attnlab bench
//! ```

mod ablate;
mod bench;
mod common;
mod compare;
mod explain;
mod generate;
mod heads;
mod inspect;
mod lens;
mod position;
mod through;
mod tokenize;
mod vectors;

use std::process::ExitCode;

use attnlab::DEFAULT_MODEL_PATH;
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
    /// A per-kernel profile of one GPU decoding step (one token over a KV cache holding the
    /// first `--tokens`), and the step's wall time.
    GpuDecode,
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
    /// Perplexity of a long text under KV-cache policies: dense, a window of the last W keys,
    /// S sink tokens beside that window (StreamingLLM), key 0 hidden.
    Streaming {
        /// The text; `-` reads standard input.
        #[arg(long)]
        text: String,
        #[arg(long, default_value_t = 256)]
        window: usize,
        #[arg(long, default_value_t = 4)]
        sinks: usize,
        /// Read only the first N tokens.
        #[arg(long)]
        max_tokens: Option<usize>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// The logit lens: each layer's output read through the final norm and unembedding — what
    /// the model would predict if it stopped there.
    Lens {
        /// The text; `-` reads standard input.
        #[arg(long)]
        text: String,
        /// Unembed at most the last N positions (each costs one vocabulary-wide product per layer).
        #[arg(long, default_value_t = attnlab::analysis::lens::LENS_MAX_POSITIONS)]
        positions: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// A word through the layers: one token in each of two texts, the cosine similarity of
    /// their residual vectors after the embedding and every block, and their nearest tokens.
    Vectors {
        /// The first text; `-` reads standard input.
        #[arg(long)]
        text: String,
        /// The second text.
        #[arg(long)]
        other: String,
        /// The token compared (its last occurrence in each text).
        #[arg(long, default_value = "bank")]
        word: String,
        /// Or the positions: in the first text …
        #[arg(long)]
        at_a: Option<usize>,
        /// … and in the second.
        #[arg(long)]
        at_b: Option<usize>,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// Two texts side by side: which heads' patterns change most between them (mean
    /// Jensen–Shannon distance of their rows, aligned from the first token where they differ).
    Compare {
        /// The first text; `-` reads standard input.
        #[arg(long)]
        text: String,
        /// The second text.
        #[arg(long)]
        other: String,
        /// Heads listed.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// One head's queries and keys as points: projected together onto their two principal
    /// axes, with what each query reads most.
    Qk {
        /// The text; `-` reads standard input.
        #[arg(long)]
        text: String,
        #[arg(long)]
        layer: usize,
        #[arg(long)]
        head: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// A what-if inside attention (unscaled, dmodel, unmasked, norope, nosink) through the
    /// whole model: the next-token distribution before and after, and Δ log p along the text.
    Whatif {
        /// The text; `-` reads standard input.
        #[arg(long)]
        text: String,
        /// unscaled | dmodel | unmasked | norope | nosink
        #[arg(long)]
        what: String,
        /// all, one layer L, or a range A-B.
        #[arg(long, default_value = "all")]
        layers: String,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendChoice,
        #[arg(long)]
        json: bool,
    },
    /// The model writes: the text, then up to N tokens chosen one at a time over the KV cache
    /// (greedy by default), printed as they come.
    Generate {
        /// The prompt; `-` reads standard input.
        #[arg(long)]
        text: String,
        #[arg(long, default_value_t = 32)]
        max_tokens: usize,
        /// 0: always the most likely token.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        temperature: f32,
        /// Sample among the k most likely tokens (0: all).
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        /// Sample among the most likely tokens whose mass reaches p.
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Keep going past the end-of-text token.
        #[arg(long)]
        ignore_eos: bool,
        /// Stop once the written text contains this (repeat for several).
        #[arg(long)]
        stop: Vec<String>,
        /// Send the text as a user's chat message, written in the file's own chat template
        /// (`tokenizer.chat_template`); a base model's file has none and is refused.
        #[arg(long)]
        chat: bool,
        /// Heads whose attention rows of the generated tokens are reported: `L.H,L.*`.
        #[arg(long, default_value = "")]
        heads: String,
        /// Which cached keys each step reads: dense, window (the last --window), sinks+window
        /// (also the first --sinks), no-key0.
        #[arg(long, default_value = "dense")]
        policy: String,
        #[arg(long, default_value_t = 256)]
        window: usize,
        #[arg(long, default_value_t = 4)]
        sinks: usize,
        /// A what-if inside attention while the model writes: unscaled, dmodel, unmasked,
        /// norope or nosink (in --layers).
        #[arg(long)]
        what: Option<String>,
        #[arg(long, default_value = "all")]
        layers: String,
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

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Tokenize { text, json } => tokenize::run(&cli.model, &text, json),
        Command::Generate { text, max_tokens, temperature, top_k, top_p, seed, ignore_eos, stop, chat, heads, policy, window, sinks, what, layers, backend: choice, json } => {
            let sampling = attnlab::generate::Sampling { temperature, top_k, top_p, seed };
            let variant = generate::Writing { policy, window, sinks, what, layers };
            generate::run(&cli.model, &text, (max_tokens, sampling, ignore_eos, stop), chat, &heads, &variant, choice, json)
        }
        Command::Inspect { text, backend: choice, heads, json, truncate } => inspect::run(&cli.model, &text, choice, &heads, json, truncate),
        Command::Explain { text, layer, head, query, backend: choice, json } => explain::run(&cli.model, &text, layer, head, query, choice, json),
        Command::Streaming { text, window, sinks, max_tokens, backend: choice, json } => through::run_streaming(&cli.model, &text, window, sinks, max_tokens, choice, json),
        Command::Vectors { text, other, word, at_a, at_b, backend: choice, json } => vectors::run_vectors(&cli.model, &text, &other, &word, (at_a, at_b), choice, json),
        Command::Compare { text, other, top, backend: choice, json } => compare::run(&cli.model, &text, &other, top, choice, json),
        Command::Qk { text, layer, head, backend: choice, json } => vectors::run_qk(&cli.model, &text, layer, head, choice, json),
        Command::Lens { text, positions, backend: choice, json } => lens::run(&cli.model, &text, positions, choice, json),
        Command::Whatif { text, what, layers, backend: choice, json } => through::run_whatif(&cli.model, &text, &what, &layers, choice, json),
        Command::Heads { text, similarity, induction, period, seed, ids, backend: choice, json } => heads::run(&cli.model, text.as_deref(), similarity, induction, period, seed, ids.as_deref(), choice, json),
        Command::Ablate { text, heads: list, backend: choice, json } => ablate::run(&cli.model, &text, &list, choice, json),
        Command::Position { task, pairs, positions, trials, seed, lengths, backend: choice, json, emit_prompts } => position::run(&cli.model, task, pairs, positions, trials, seed, lengths, choice, json, emit_prompts.as_deref()),
        Command::Bench { what, tokens, n, reps, json, matmul } => bench::run(&cli.model, what, &tokens, &n, reps, json, &matmul),
    }
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
