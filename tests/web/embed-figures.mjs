// Figures for embedded widgets (docs/BENCHMARKS.md): `node tests/web/embed-figures.mjs`
// after `make build`. CPU mode (WebGPU off), Debian's Chromium, served from localhost.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { serve, NO_WEBGPU_ARGS } from './serve.mjs';

const dist = new URL('../../dist', import.meta.url).pathname;
const gz = (f) => zlib.gzipSync(fs.readFileSync(path.join(dist, f)), { level: 9 }).length;
const kib = (n) => (n / 1024).toFixed(1);

const texts = ['The dog chased the cat because it was hungry.', 'Anna gave Bob the book that she had bought yesterday. She'];
const five = (poster) => `<!doctype html><html><head><meta charset="utf-8"><script type="module" src="/embed.js"></script></head><body>
${[['head', 3, 4], ['model', 0, 0], ['sinks', 0, 0], ['head', 14, 5], ['tokens', 0, 0]].map(([view, l, h], i) =>
  poster ? `<attn-lab id="w${i}" result-src="/figures/sentence-heads.json" view="${view}" layer="14" head="5"></attn-lab>`
    : `<attn-lab id="w${i}" text="${texts[i % 2]}" view="${view}" layer="${l}" head="${h}" loading="eager"></attn-lab>`).join('\n')}
</body></html>`;

const srv = await serve(dist, { pages: { '/five-live.html': five(false), '/five-posters.html': five(true) } });
const rows = [];
async function firstVisible(page, file) {
  const before = srv.bytes();
  const t0 = Date.now();
  await page.goto(srv.url + file);
  await page.waitForFunction(() => [...document.querySelectorAll('attn-lab')].some((e) => e.dataset.state === 'done'), null, { timeout: 300_000 });
  const first = { bytes: srv.bytes() - before, ms: Date.now() - t0 };
  await page.waitForFunction(() => [...document.querySelectorAll('attn-lab')].every((e) => ['done', 'error'].includes(e.dataset.state)), null, { timeout: 300_000 });
  return { ...first, all: Date.now() - t0 };
}

// A persistent profile: the second visit finds the model in the Cache API.
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'attnlab-fig-'));
const ctx = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: NO_WEBGPU_ARGS, viewport: { width: 1100, height: 900 } });
const page = await ctx.newPage();
const posters = await firstVisible(page, 'five-posters.html');
const cold = await firstVisible(page, 'five-live.html');
const warm = await firstVisible(page, 'five-live.html');
await ctx.close();
srv.close();
fs.rmSync(profile, { recursive: true, force: true });

console.log('| page (5 widgets, CPU) | bytes before the first figure | first figure | all done |');
console.log('|---|---|---|---|');
console.log(`| posters (result-src) | ${kib(posters.bytes)} KiB | ${posters.ms} ms | ${posters.all} ms |`);
console.log(`| live, first visit | ${kib(cold.bytes)} KiB | ${cold.ms} ms | ${cold.all} ms |`);
console.log(`| live, model in the Cache API | ${kib(warm.bytes)} KiB | ${warm.ms} ms | ${warm.all} ms |`);
console.log('');
console.log('| file | bytes | gzip -9 |');
console.log('|---|---|---|');
for (const f of ['embed.js', 'attnlab-web.js', 'attnlab-web_bg.wasm', 'attnlab-worker.js', 'attnlab-worker_bg.wasm']) {
  console.log(`| ${f} | ${kib(fs.statSync(path.join(dist, f)).size)} KiB | ${kib(gz(f))} KiB |`);
}
