// Where a decoding step's time goes in the page's CPU worker (a measurement, not a test): the
// page generates 32 greedy tokens (`?backend=cpu&gen=32&temperature=0`) while Chrome's sampling
// profiler records the worker; prints the decode timings and the functions with the most self
// time, and writes the whole profile (open it in Chrome's DevTools, Performance tab).
//   node tests/web/worker-profile.mjs [site folder, default dist] [out.cpuprofile]
// `make build` strips function names from the WebAssembly (wasm-opt); for names, build the
// worker without it into a copy of the site (as scripts/relaxed-worker.sh does, minus wasm-opt):
//   cp -al dist /tmp/site && rm /tmp/site/attnlab-worker-relaxed* &&
//   RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo build --release --target wasm32-unknown-unknown \
//     --features web --bin attnlab-worker --target-dir target/relaxed-simd &&
//   wasm-bindgen --target no-modules --no-typescript --out-dir /tmp/site --out-name attnlab-worker-relaxed \
//     target/relaxed-simd/wasm32-unknown-unknown/release/attnlab-worker.wasm
import fs from 'node:fs';
import puppeteer from 'puppeteer-core';
import { serve, NO_WEBGPU_ARGS } from './serve.mjs';

const site = process.argv[2] ?? new URL('../../dist', import.meta.url).pathname;
const out = process.argv[3] ?? '/tmp/attnlab-worker.cpuprofile';
const srv = await serve(site);
const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', args: NO_WEBGPU_ARGS, headless: true });
const page = await browser.newPage();
const sessions = [];
// Puppeteer hands each dedicated worker's DevTools session over as it starts.
page.on('workercreated', async (w) => {
  await w.client.send('Profiler.enable');
  await w.client.send('Profiler.setSamplingInterval', { interval: 200 });
  await w.client.send('Profiler.start');
  sessions.push(w.client);
});
await page.goto(`${srv.url}index.html?backend=cpu&run=1&gen=32&temperature=0&text=${encodeURIComponent('The capital of France is')}`);
await page.waitForSelector('html[data-attnlab-state=done]', { timeout: 600_000 });
const r = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
const d = r.timings_ms.decode;
console.log(`prefill ${r.timings_ms.prefill} ms; decode mean ${(d.reduce((a, b) => a + b, 0) / d.length).toFixed(1)} ms, best ${Math.min(...d)}, worst ${Math.max(...d)} (${d.length} steps)`);
for (const s of sessions) {
  const { profile } = await s.send('Profiler.stop');
  if (!profile.samples?.length) continue;
  fs.writeFileSync(out, JSON.stringify(profile));
  const self = new Map();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const name = byId.get(id).callFrame.functionName || '(anonymous)';
    self.set(name, (self.get(name) ?? 0) + profile.timeDeltas[i] / 1000);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log(`| self time (ms) | share | function |\n|---|---|---|`);
  for (const [name, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`| ${ms.toFixed(0)} | ${(100 * ms / total).toFixed(1)} % | ${name.slice(0, 100)} |`);
  console.log(`profile written to ${out}`);
}
await browser.close();
srv.close();
