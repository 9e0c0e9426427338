// Long inputs on the CPU worker for docs/BENCHMARKS.md (a measurement, not a test): forward
// time and the worker's WebAssembly memory after a run of 2048 and 4096 tokens, and the JSON
// export of the selected head's rows (asked for on export, as Float32Arrays).
//   node tests/web/memory-figures.mjs   (after `make build` and `cargo build --release`)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const root = new URL('../..', import.meta.url).pathname;
const cli = (args, input) => spawnSync(`${root}target/release/attnlab`, args, { input, encoding: 'utf8', maxBuffer: 1 << 30, cwd: root }).stdout;
const srv = await serve(`${root}dist`);
const browser = await launchChromium(NO_WEBGPU_ARGS);
const page = await browser.newPage({ acceptDownloads: true });
const sentence = 'The committee reviewed the proposal on Tuesday, and after a long debate about costs, schedules and the risks of delay, it voted to fund the first phase. ';
console.log('| tokens | worker forward (s) | worker WebAssembly memory after the run (MiB) | JSON export with the rows: time from click (s), size (MiB) |\n|---|---|---|---|');
for (const n of [2048, 4096]) {
  const tokens = JSON.parse(cli(['tokenize', '--text', '-', '--json'], sentence.repeat(Math.ceil(n / 25)))).tokens;
  const text = tokens.slice(0, n).join('');
  await page.goto(`${srv.url}index.html?backend=cpu`);
  await page.waitForSelector('html[data-attnlab-state=ready]', { timeout: 120_000 });
  await page.fill('#attnlab-text', text);
  await page.click('button.primary');
  await page.waitForSelector('html[data-attnlab-state=done]', { timeout: 900_000 });
  const timings = await page.textContent('.timings');
  const forward = Number(/forward (\d+) ms/.exec(timings)[1]) / 1e3;
  const mem = /engine memory (\d+) MiB/.exec(timings)[1];
  const t0 = Date.now();
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 300_000 }), page.click('.exports button:has-text("JSON")')]);
  const bytes = fs.statSync(await download.path()).size;
  console.log(`| ${n} | ${forward.toFixed(1)} | ${mem} | ${((Date.now() - t0) / 1e3).toFixed(1)}, ${(bytes / 1048576).toFixed(1)} |`);
}
await browser.close();
srv.close();
