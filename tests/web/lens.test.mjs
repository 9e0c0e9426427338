// "Layer by layer" (the logit lens) in the page, CPU worker in headless Chromium: opening
// `?view=lens` on a run draws a layer × token grid whose numbers are transformers'
// (tests/data/lens-smollm2.json: p of the final answer per layer within 1e-3), values on hover,
// a click follows a column, the URL keeps the tab, the export carries the lens, and a new text
// replaces it (no stale grid).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const ref = JSON.parse(fs.readFileSync(new URL('../data/lens-smollm2.json', import.meta.url)));
// A course page with the lens as a widget (embed.js, its own shadow root, dark theme).
const lensWidget = `<!doctype html><html><head><meta charset="utf-8"><title>lens widget</title>
<script type="module" src="/embed.js"></script></head><body>
<attn-lab id="l" view="lens" loading="eager" controls="none" theme="dark">${ref.cases[0].text}</attn-lab>
</body></html>`;
const srv = await serve(new URL('../../dist', import.meta.url).pathname, { pages: { '/test-lens.html': lensWidget } });
test.after(() => srv.close());
const exported = async (page) => JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
// An exported lens against transformers' case: ids, final answers, p of the answer per layer.
function sameAsTransformers(lens, c) {
  assert.deepEqual(lens.ids, c.ids);
  assert.deepEqual(lens.final_argmax, c.final_argmax);
  let worst = 0;
  c.layers.forEach((layer, l) => layer.p_final_top1.forEach((p, i) => { worst = Math.max(worst, Math.abs(lens.layers[l].p_final_top1[i] - p)); }));
  assert.ok(worst <= 1e-3, `p of the final answer differs by ${worst}`);
}

test('the logit lens tab: transformers\' numbers, hover, a chosen column, the URL, the export, a new text', async () => {
  const c = ref.cases[0];
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${srv.url}?text=${encodeURIComponent(c.text)}&view=lens&run=1`);
    const cells = c.layers.length * c.ids.length;
    await page.waitForFunction((n) => document.querySelectorAll('.lens-cell').length === n, cells, { timeout: 300_000 });
    const result = await exported(page);
    sameAsTransformers(result.lens, c);
    // The last layer's cell of the last column names the model's answer.
    const answer = await page.textContent(`.lens-cell[data-layer="${c.layers.length - 1}"][data-col="${c.ids.length - 1}"] text`);
    assert.ok(answer.length > 0);
    assert.match(await page.textContent('.lens-finding'), /first becomes the likeliest token at layer \d+/);
    assert.match(page.url(), /[?&]view=lens(&|$)/);
    // Hover: the five likeliest tokens with probabilities.
    await page.hover('.lens-cell[data-layer="10"][data-col="3"]');
    assert.match(await page.textContent('.lens-tip'), /^Layer 10, after “.*”: (“.*” 0\.\d{3}(, )?){5}/s);
    // A click follows another column: the line's caption names its token.
    await page.click('.lens-cell[data-layer="0"][data-col="2"]');
    assert.ok((await page.textContent('.lens-line figcaption')).endsWith(`at “${result.lens.tokens[2]}”.`));
    assert.equal(await page.locator('.lens-line circle').count(), c.layers.length);
    // A new text: the grid is recomputed for it, never left from the old one.
    const other = ref.cases[1];
    await page.fill('#attnlab-text', other.text);
    await page.press('#attnlab-text', 'Control+Enter');
    await page.waitForFunction((n) => document.querySelectorAll('.lens-cell').length === n, other.layers.length * other.ids.length, { timeout: 300_000 });
    assert.deepEqual((await exported(page)).lens.final_argmax, other.final_argmax);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('<attn-lab view="lens">: the same grid in a course page, transformers\' numbers in its export', async () => {
  const c = ref.cases[0];
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${srv.url}test-lens.html`);
    const cells = c.layers.length * c.ids.length;
    // Playwright's CSS locators pierce the widget's shadow root.
    await page.waitForFunction(() => document.getElementById('l')?.dataset.state === 'done', null, { timeout: 300_000 });
    assert.equal(await page.locator('#l .lens-cell').count(), cells);
    assert.equal(await page.evaluate(() => document.getElementById('l').shadowRoot.querySelector('[data-view]').dataset.view), 'lens');
    const result = JSON.parse(await page.evaluate(() => document.getElementById('l').exportJson()));
    sameAsTransformers(result.lens, c);
    // Hover and click work inside the shadow root as in the page.
    await page.hover('#l .lens-cell[data-layer="10"][data-col="3"]');
    assert.match(await page.locator('#l .lens-tip').textContent(), /^Layer 10, after “.*”: (“.*” 0\.\d{3}(, )?){5}/s);
    await page.click('#l .lens-cell[data-layer="0"][data-col="2"]');
    assert.ok((await page.locator('#l .lens-line figcaption').textContent()).endsWith(`at “${result.lens.tokens[2]}”.`));
    // The grid fits the widget's column: it scrolls inside, the page does not.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
