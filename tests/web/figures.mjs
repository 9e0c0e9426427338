// Playground figures for docs/BENCHMARKS.md (a measurement, not a test):
// time from opening the page (model already in the Cache API) to the first heatmap of a
// ~64-token text, on WebGPU (SwiftShader) and on the CPU worker; and the bundle sizes.
//   node tests/web/figures.mjs   (after `trunk build --release`)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { serve, WEBGPU_ARGS, NO_WEBGPU_ARGS } from './serve.mjs';

const dist = new URL('../../dist', import.meta.url).pathname;
const srv = await serve(dist);
const text = 'Anna gave Bob the book that she had bought yesterday, and he thanked her because he had wanted to read it for a long time. Later that evening they talked about the story, the characters, and the ending.';

async function measure(label, args, extra = '') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attnlab-fig-'));
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: '/usr/bin/chromium', args });
  const page = await ctx.newPage();
  const done = () => page.waitForFunction(() => ['done', 'error'].includes(document.documentElement.dataset.attnlabState), null, { timeout: 600_000 });
  // First visit: downloads the model into the Cache API.
  let t = Date.now();
  await page.goto(srv.url + `?text=${encodeURIComponent(text)}&run=1${extra}`);
  await done();
  const first = Date.now() - t;
  // Second visit: the model comes from the cache.
  t = Date.now();
  await page.goto(srv.url + `?text=${encodeURIComponent(text)}&run=1${extra}`);
  await done();
  const cached = Date.now() - t;
  const r = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
  console.log(`| ${label} | ${r.backend} | ${r.ids.length} | ${first} | ${cached} | ${r.timings_ms.forward.toFixed(0)} |`);
  await ctx.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log('| run | backend | tokens | first visit ms (download + run) | cached model ms (page open → heatmap) | forward ms |');
console.log('|---|---|---|---|---|---|');
await measure('SwiftShader adapter, default (software adapter → CPU)', WEBGPU_ARGS);
await measure('WebGPU on SwiftShader (?backend=webgpu)', WEBGPU_ARGS, '&backend=webgpu');
await measure('WebGPU off (CPU worker)', NO_WEBGPU_ARGS);
for (const f of fs.readdirSync(dist).filter((f) => f.endsWith('.wasm'))) {
  const b = fs.readFileSync(path.join(dist, f));
  console.log(`bundle: ${f}: ${(b.length / 1024).toFixed(0)} KiB, gzip ${(zlib.gzipSync(b).length / 1024).toFixed(0)} KiB`);
}
srv.close();
