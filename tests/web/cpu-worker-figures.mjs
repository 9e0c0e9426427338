// CPU worker vs native figures for docs/BENCHMARKS.md (a measurement, not a test): the
// worker's forward time (best of 3 runs) for ~64- and ~256-token texts in headless
// Chromium with WebGPU off, for both worker builds (relaxed-SIMD FMA, the default where the
// browser has it, and plain SIMD128 via `?simd=plain`). Compare with the native CLI on the
// same text and the same work (attention capture, every position's argmax):
//   RAYON_NUM_THREADS=1 ./target/release/attnlab inspect --heads none --json --text "<the 240-token text>"
//   node tests/web/cpu-worker-figures.mjs   (after `make build`)
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const srv = await serve(new URL('../../dist', import.meta.url).pathname);
const browser = await launchChromium(NO_WEBGPU_ARGS);
const page = await browser.newPage();
const sentence = 'The quick brown fox jumps over the lazy dog while the cat sleeps.';
console.log('| worker build | tokens | worker forward, best of 3 (ms) |\n|---|---|---|');
for (const build of ['', '&simd=plain']) {
  for (const reps of [4, 16]) {
    const text = Array(reps).fill(sentence).join(' ');
    let best = Infinity;
    let n = 0;
    let badge = '';
    for (let k = 0; k < 3; k++) {
      await page.goto(`${srv.url}index.html?backend=cpu&run=1&text=${encodeURIComponent(text)}${build}`);
      await page.waitForSelector('html[data-attnlab-state=done]', { timeout: 300_000 });
      const r = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
      best = Math.min(best, r.timings_ms.forward);
      n = r.ids.length;
      badge = await page.textContent('.badge');
    }
    console.log(`| ${badge.replace(/^CPU · /, '')} | ${n} | ${best.toFixed(0)} |`);
  }
}
await browser.close();
srv.close();
