// Head-similarity figures for docs/BENCHMARKS.md (a measurement, not a test): time from
// pressing "Compare every pair of heads" to the sentence, in the CPU worker, for texts of
// ~15, ~150 and ~300 tokens.
//   node tests/web/similarity-figures.mjs   (after `make build`)
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const srv = await serve(new URL('../../dist', import.meta.url).pathname);
const browser = await launchChromium(NO_WEBGPU_ARGS);
const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
console.log('| tokens | rows averaged | similarity (ms) |\n|---|---|---|');
for (const reps of [1, 10, 20]) {
  const text = Array(reps).fill('The quick brown fox jumps over the lazy dog while the cat sleeps.').join(' ');
  // view=head: nothing is computed until the button is pressed.
  await page.goto(`${srv.url}index.html?view=head&run=1&text=${encodeURIComponent(text)}`);
  await page.waitForSelector('html[data-attnlab-state=done]', { timeout: 300_000 });
  // Texts up to 64 tokens are compared on opening the tab; longer ones on the button.
  const t0 = Date.now();
  await page.click('nav.tabs button >> nth=4');
  await page.waitForSelector('.run-similarity, .alike-summary');
  await page.evaluate(() => document.querySelector('.run-similarity:not([disabled])')?.click());
  await page.waitForSelector('.alike-summary', { timeout: 600_000 });
  const ms = Date.now() - t0;
  const summary = await page.textContent('.alike-summary');
  const rows = summary.match(/over (\d+) evenly spaced rows of (\d+)/);
  const n = (await page.textContent('.timings')).split(' ')[0];
  console.log(`| ${n} | ${rows ? `${rows[1]} of ${rows[2]}` : 'all'} | ${ms} |`);
}
await browser.close();
srv.close();
