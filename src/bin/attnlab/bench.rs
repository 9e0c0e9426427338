//! `attnlab bench`: prefill, attention kernels, sliding window, GPU profile, memory.

use attnlab::analysis::report::{inspect, HeadSelection};
use attnlab::backends::{cpu::CpuBackend, Backend, ForwardOptions, LogitsFor};
use attnlab::util::Clock;
use attnlab::Model;

use crate::common::{load, peak_rss_mib};
use crate::BenchWhat;

pub fn run(model_path: &str, what: BenchWhat, tokens: &[usize], n: &[usize], reps: usize, json: bool, matmul: &str) -> Result<(), String> {
    match what {
        BenchWhat::Attention => bench_attention(n, reps)?,
        BenchWhat::Window => bench_window(n, reps)?,
        BenchWhat::Memory => bench_memory(model_path, tokens)?,
        BenchWhat::MemoryOne => bench_memory_one(model_path, tokens.first().copied().unwrap_or(128), json)?,
        BenchWhat::Gpu if matmul == "compare" => bench_gpu_matmuls(model_path, tokens, reps)?,
        BenchWhat::Gpu => {
            let kernel = attnlab::backends::gpu::context::MatmulKernel::parse(matmul).ok_or_else(|| format!("--matmul {matmul}: expected registers, workgroup or compare"))?;
            bench_gpu(model_path, tokens.first().copied().unwrap_or(128), kernel, json)?
        }
        BenchWhat::GpuDecode => bench_gpu_decode(model_path, tokens.first().copied().unwrap_or(128), json)?,
        BenchWhat::Prefill => bench_prefill(model_path, tokens, reps)?,
    }
    Ok(())
}

/// `bench prefill`: CPU with 1 and all threads, and the GPU when one is found.
fn bench_prefill(model_path: &str, tokens: &[usize], reps: usize) -> Result<(), String> {
    let (model, load_ms) = load(model_path)?;
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
        for &n in tokens {
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
            for &n in tokens {
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
    print_profile(&rows);
    Ok(())
}

/// One decoding step on the GPU after a prefill of `n` tokens: wall time (best of 3) and the
/// per-kernel profile of one more step.
fn bench_gpu_decode(model_path: &str, n: usize, json: bool) -> Result<(), String> {
    use attnlab::backends::gpu::{profile, GpuBackend};
    let (model, _) = load(model_path)?;
    let gpu = GpuBackend::new().map_err(|e| e.to_string())?;
    gpu.prepare(&model);
    let steps = 4;
    let ids = bench_ids(&model, n + steps);
    let opts = ForwardOptions { capture_attention: false, logits_for: LogitsFor::Last, ..Default::default() };
    let mut cache = gpu.new_cache(&model, n + steps);
    let step = |cache: &mut _, at: usize| pollster::block_on(gpu.step_async(&model, &ids[at..at + 1], cache, &opts)).map_err(|e| e.to_string());
    pollster::block_on(gpu.step_async(&model, &ids[..n], &mut cache, &opts)).map_err(|e| e.to_string())?;
    let mut wall = f64::INFINITY;
    for at in n..n + steps - 1 {
        let clock = Clock::start();
        step(&mut cache, at)?;
        wall = wall.min(clock.ms());
    }
    if !gpu.ctx.start_profile() {
        return Err(format!("{} offers no timestamp queries: no per-kernel profile (a decoding step takes {wall:.1} ms)", gpu.ctx.describe()));
    }
    step(&mut cache, n + steps - 1)?;
    let timed = gpu.ctx.finish_profile().map_err(|e| e.to_string())?;
    let rows = profile::summarise(&timed);
    let gpu_ms: f64 = timed.iter().map(|t| t.ms).sum();
    if json {
        println!("{}", serde_json::json!({ "adapter": gpu.ctx.describe(), "cache_tokens": n, "step_wall_ms": wall, "tokens_per_s": 1e3 / wall, "kernels_ms": gpu_ms, "dispatches": timed.len(), "rows": rows }));
        return Ok(());
    }
    println!("adapter: {}; one decoding step over {n} cached tokens: {wall:.1} ms wall (best of {}, {:.1} tokens/s); {} dispatches, {gpu_ms:.1} ms of kernels", gpu.ctx.describe(), steps - 1, 1e3 / wall, timed.len());
    print_profile(&rows);
    Ok(())
}

/// A per-kernel profile as a table.
fn print_profile(rows: &[attnlab::backends::gpu::profile::ProfileRow]) {
    println!("| kernel | calls | total ms | share | GFLOP/s | GB/s |");
    println!("|---|---|---|---|---|---|");
    let f = |v: Option<f64>| v.map(|v| if v >= 10.0 { format!("{v:.1}") } else { format!("{v:.3}") }).unwrap_or_else(|| "—".into());
    for r in rows {
        println!("| {} | {} | {:.2} | {:.1}% | {} | {} |", r.kernel, r.calls, r.total_ms, 100.0 * r.share, f(r.gflop_per_s), f(r.gb_per_s));
    }
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
                causal_attention(AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window, ..Default::default() }, &q, &k, &v, &mut o, &mut lse);
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
                        ops::flash_attention(ctx, &mut enc, AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window, ..Default::default() }, &qb, &kb, &vb, &o, &lse);
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

/// GPU flash vs naive attention on random inputs shaped like SmolLM2-135M (9 query heads,
/// 3 KV heads, head size 64).
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
        let shape = AttnShape { n, past: 0, n_head, n_kv, head_dim: hd, window: None, ..Default::default() };
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
