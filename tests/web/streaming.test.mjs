// "Why sinks matter" in the attention-sink tab: the saved run of the license text is drawn at
// once, and the four cache policies computed in the browser (the engine worker, CPU path) equal
// Hugging Face transformers' numbers on the same text (tests/data/streaming-smollm2.json: a 4-D
// mask per policy, window 256, 4 sink tokens): log p per position within 5e-3, perplexities
// within 0.5%. Debian's Chromium, headless.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const ref = JSON.parse(fs.readFileSync(new URL('../data/streaming-smollm2.json', import.meta.url)));
const POLICIES = ['dense', 'window', 'sinks+window', 'no-key0'];
const srv = await serve(new URL('../../dist', import.meta.url).pathname);
test.after(() => srv.close());

function compare(got, what) {
  assert.deepEqual(got.ids, ref.ids, `${what}: the same tokens`);
  for (const name of POLICIES) {
    const [g, r] = [got.policies[name], ref.policies[name]];
    let worst = 0;
    r.logp.forEach((l, i) => { worst = Math.max(worst, Math.abs(g.logp[i] - l)); });
    assert.ok(worst <= 5e-3, `${what} ${name}: log p differs by ${worst}`);
    for (const k of ['ppl_after_window', 'ppl_all']) assert.ok(Math.abs(g[k] / r[k] - 1) <= 5e-3, `${what} ${name} ${k}: ${g[k]} vs ${r[k]}`);
  }
}

test('why sinks matter: the saved run at once, then the four caches computed here equal transformers', async () => {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${srv.url}?view=sinks&run=0`);
    // The poster: four curves and the legend's perplexities, before anything runs.
    await page.waitForSelector('.streaming-legend li >> nth=3', { timeout: 60_000 });
    assert.equal(await page.locator('.streaming-chart polyline').count(), 4);
    const shown = await page.$$eval('.streaming-legend li', (li) => li.map((l) => [l.dataset.policy, Number(l.querySelector('.ppl').textContent)]));
    for (const [name, v] of shown) assert.ok(Math.abs(v - ref.policies[name].ppl_after_window) < 0.01, `${name}: ${v}`);
    assert.match(await page.textContent('.streaming-finding'), /only the last 256 tokens 34\.37 .*the first 4 tokens kept beside them 14\.86/);
    compare(JSON.parse(await page.evaluate(() => window.attnlab.exportStreaming())), 'saved run');
    // Hover names the values.
    const box = await page.locator('.streaming-chart').boundingBox();
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2);
    assert.match(await page.textContent('.sinks-matter .hover-readout'), /tokens \d+–\d+: dense [0-9.]+ · window [0-9.]+/);
    // Computed here, on the same text and settings.
    await page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'ready', null, { timeout: 240_000 });
    await page.click('button.run-streaming');
    await page.waitForSelector('.streaming-controls progress');
    await page.waitForFunction(() => { const s = window.attnlab.exportStreaming(); return s && !JSON.parse(s).shipped; }, null, { timeout: 600_000, polling: 1000 });
    compare(JSON.parse(await page.evaluate(() => window.attnlab.exportStreaming())), 'computed in the browser');
    assert.match(await page.textContent('.sinks-matter figcaption'), /Computed here on 1536 tokens/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
