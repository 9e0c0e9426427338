// Decoding figures for docs/BENCHMARKS.md (a measurement, not a test): time to first token
// (the prompt's prefill) and per-token decode in the CPU worker (headless Chromium, WebGPU
// off, the default relaxed-SIMD build) against the native CLI on one thread, same prompt,
// same 32 greedy tokens, the selected head's capture kept on both sides, median of 3 runs each.
//   node tests/web/generate-figures.mjs   (after `make build` and `cargo build --release`)
import { execFileSync } from 'node:child_process';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const N = 32;
const PROMPTS = ['The capital of France is', Array(8).fill('The quick brown fox jumps over the lazy dog while the cat sleeps.').join(' ')];
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
const bin = new URL('../../target/release/attnlab', import.meta.url).pathname;

const srv = await serve(new URL('../../dist', import.meta.url).pathname);
const browser = await launchChromium(NO_WEBGPU_ARGS);
const page = await browser.newPage();
console.log('| prompt tokens | where | time to first token (ms) | per token (ms) | tokens/s |\n|---|---|---|---|---|');
for (const text of PROMPTS) {
  const rows = { worker: [], native: [] };
  let n = 0;
  for (let k = 0; k < 3; k++) {
    await page.goto(`${srv.url}index.html?backend=cpu&run=1&gen=${N}&temperature=0&text=${encodeURIComponent(text)}`);
    await page.waitForSelector('html[data-attnlab-state=done]', { timeout: 600_000 });
    const r = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    rows.worker.push([r.timings_ms.prefill, mean(r.timings_ms.decode)]);
    n = r.ids.length - r.generated.length;
    const out = JSON.parse(execFileSync(bin, ['generate', '--json', '--ignore-eos', '--max-tokens', String(N), '--heads', '0.0', '--text', text], { env: { ...process.env, RAYON_NUM_THREADS: '1' }, maxBuffer: 1 << 28 }).toString());
    rows.native.push([out.timings_ms.prefill, mean(out.timings_ms.decode)]);
  }
  for (const [where, v] of Object.entries(rows)) {
    const ttft = median(v.map((x) => x[0]));
    const per = median(v.map((x) => x[1]));
    console.log(`| ${n} | ${where === 'worker' ? 'CPU worker (WebAssembly, one thread)' : 'native CLI, RAYON_NUM_THREADS=1'} | ${ttft.toFixed(0)} | ${per.toFixed(1)} | ${(1000 / per).toFixed(1)} |`);
  }
}
await browser.close();
srv.close();
