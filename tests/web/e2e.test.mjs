// End-to-end tests of the built site (dist/) in Debian's Chromium, headless, through the
// page's testing contract (URL parameters, data-attnlab-state/backend, window.attnlab).
// Run by `make test` after `trunk build --release`: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { reference, compareWithReference as check } from './reference.mjs';
import { serve, launchChromium, WEBGPU_ARGS, NO_WEBGPU_ARGS } from './serve.mjs';

const srv = await serve(new URL('../../dist', import.meta.url).pathname);
test.after(() => srv.close());

async function open(args, query) {
  const browser = await launchChromium(args);
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { errors.push('dialog: ' + d.message()); d.dismiss(); });
  await page.goto(srv.url + (query ?? ''));
  return { browser, page, errors };
}

const state = (page) => page.evaluate(() => document.documentElement.dataset.attnlabState);
async function settle(page, timeout = 240_000) {
  await page.waitForFunction(() => ['done', 'error', 'ready'].includes(document.documentElement.dataset.attnlabState), null, { timeout });
  return state(page);
}
async function runUntilDone(page, timeout = 240_000) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.documentElement.dataset.attnlabState), null, { timeout });
  return state(page);
}

const compareWithReference = (result, layer, head) => check(result, layer, head, { full: true });

const TEXT = reference.cases[0].text;
const RUN_QUERY = `?text=${encodeURIComponent(TEXT)}&layer=3&head=4&run=1`;

test('CPU fallback in a worker (WebGPU off) reaches done with the reference numbers', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, RUN_QUERY);
  try {
    assert.equal(await runUntilDone(page), 'done');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.attnlabBackend), 'cpu');
    assert.match(await page.textContent('.note'), /no WebGPU adapter/);
    // Chromium validates relaxed SIMD: the worker's FMA build runs, and the badge says which.
    assert.match(await page.getAttribute('.badge', 'title'), /WebAssembly SIMD128 \+ relaxed FMA/);
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.equal(result.backend, 'cpu');
    compareWithReference(result, 3, 4);
    // The heatmap is exact for a short text, and labelled.
    assert.equal(await page.getAttribute('canvas[role=img]', 'data-pooled'), 'false');
    // The URL holds the state.
    assert.match(await page.evaluate(() => location.search), /layer=3&head=4/);
    // Another head: exported rows follow the selection.
    await page.fill('input[name=head]', '7');
    await page.dispatchEvent('input[name=head]', 'change');
    await runUntilDone(page);
    const again = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    compareWithReference(again, 3, 7);
    assert.match(await page.evaluate(() => location.search), /head=7/);
    // Model view: every head as a thumbnail, grouped by KV head.
    await page.click('nav.tabs button >> nth=1');
    await page.waitForSelector('.thumb canvas', { timeout: 60_000 });
    assert.equal((await page.$$('.thumb')).length, 270);
    assert.equal((await page.$$('.kv-group')).length, 90);
    // Sink panel: 30 layers × 9 heads and the per-layer curve.
    await page.click('nav.tabs button >> nth=2');
    assert.equal((await page.$$('.sink-cell')).length, 270);
    assert.equal((await page.$$('.sink-chart[aria-label^="Line chart: share of attention"] circle')).length, 30);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the plain SIMD128 worker build (browsers without relaxed SIMD) gives the reference numbers too', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `${RUN_QUERY}&simd=plain`);
  try {
    assert.equal(await runUntilDone(page), 'done');
    const badge = await page.getAttribute('.badge', 'title');
    assert.match(badge, /WebAssembly SIMD128, one thread/);
    assert.doesNotMatch(badge, /relaxed/);
    compareWithReference(JSON.parse(await page.evaluate(() => window.attnlab.exportJson())), 3, 4);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a software WebGPU adapter (SwiftShader) means the CPU by default, and says why', async () => {
  const { browser, page, errors } = await open(WEBGPU_ARGS, RUN_QUERY);
  try {
    assert.equal(await runUntilDone(page, 300_000), 'done');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.attnlabBackend), 'cpu');
    assert.match(await page.textContent('.attnlab'), /SwiftShader, a software renderer: the CPU worker is faster here/);
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.equal(result.backend, 'cpu');
    compareWithReference(result, 3, 4);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('?backend=webgpu runs the whole model in WGSL on SwiftShader with the reference numbers, and keeps the choice in the URL', async () => {
  const { browser, page, errors } = await open(WEBGPU_ARGS, `${RUN_QUERY}&backend=webgpu`);
  try {
    assert.equal(await runUntilDone(page, 300_000), 'done');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.attnlabBackend), 'webgpu');
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.equal(result.backend, 'webgpu');
    compareWithReference(result, 3, 4);
    assert.match(page.url(), /[?&]backend=webgpu(&|$)/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a 2000-token input renders a pooled map and zooms', async () => {
  const long = 'The quick brown fox jumps over the lazy dog. '.repeat(200);
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `?text=${encodeURIComponent(long)}&layer=5&head=2&run=1`);
  try {
    assert.equal(await runUntilDone(page, 400_000), 'done');
    const n = JSON.parse(await page.evaluate(() => window.attnlab.exportJson())).ids.length;
    assert.ok(n >= 2000, `${n} tokens`);
    assert.equal(await page.getAttribute('canvas[role=img]', 'data-pooled'), 'true');
    // Click in the lower-left of the map: zoom to an exact 128-token window.
    const canvas = await page.$('canvas[role=img]');
    await canvas.hover({ position: { x: 120, y: 610 } });
    assert.match(await page.textContent('.tooltip'), /queries \d+–\d+ → keys \d+–\d+: max 0\.\d+/);
    await canvas.click({ position: { x: 120, y: 610 } });
    await page.waitForFunction(() => document.querySelector('canvas[role=img]').dataset.pooled === 'false', null, { timeout: 120_000 });
    assert.match(await page.textContent('.head-title'), /queries \d+–\d+, keys \d+–\d+/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a garbage, a 5 GB, a non-GGUF or a truncated file shows a clear error fast and the app keeps working; pasted markup stays text', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, '?run=0');
  try {
    assert.equal(await settle(page), 'ready');
    await page.setInputFiles('input[type=file]', { name: 'broken.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('GGUF\x03\x00\x00\x00 this is not a model at all') });
    await page.waitForSelector('.error');
    assert.equal(await state(page), 'error');
    assert.match(await page.textContent('.error'), /truncated|not a GGUF|cannot read/);
    // A 5 GB file is refused from its size alone (nothing is read), a file that is not GGUF
    // from its first bytes, a truncated model by the parser; the model loaded stays.
    const huge = '/tmp/attnlab-huge-test.gguf';
    fs.closeSync(fs.openSync(huge, 'w'));
    fs.truncateSync(huge, 5e9);
    try {
      const t0 = Date.now();
      await page.setInputFiles('input[type=file]', huge);
      await page.waitForFunction(() => /is 5\.0 GB/.test(document.querySelector('.error')?.textContent ?? ''), null, { timeout: 10_000 });
      assert.ok(Date.now() - t0 < 5000, `refused in ${Date.now() - t0} ms`);
      assert.match(await page.textContent('.error'), /files up to 3\.2 GB can be opened here/);
    } finally {
      fs.unlinkSync(huge);
    }
    await page.setInputFiles('input[type=file]', { name: 'notes.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('PK\x03\x04 a zip, not a model') });
    await page.waitForFunction(() => /notes\.gguf: not a GGUF file/.test(document.querySelector('.error')?.textContent ?? ''), null, { timeout: 10_000 });
    const model = fs.readFileSync(new URL('../../dist/models/SmolLM2-135M-Instruct.Q4_1.gguf', import.meta.url));
    await page.setInputFiles('input[type=file]', { name: 'cut.gguf', mimeType: 'application/octet-stream', buffer: model.subarray(0, 2_000_000) });
    await page.waitForFunction(() => /truncated|lies outside|beyond/.test(document.querySelector('.error')?.textContent ?? ''), null, { timeout: 60_000 });
    // The loaded model still runs, and markup in the text is shown as text, never run.
    await page.fill('#attnlab-text', '<script>alert(1)</script><b>bold</b>');
    await page.click('button.primary');
    assert.equal(await runUntilDone(page), 'done');
    const strip = await page.$$eval('.token', (els) => els.map((e) => e.textContent).join(''));
    assert.equal(strip, '<script>alert(1)</script><b>bold</b>');
    assert.equal(await page.$$eval('.tokens b', (els) => els.length), 0);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('lost in the middle: an experiment runs with progress, draws the U-curve, and cancels', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, '?view=position&run=0');
  try {
    assert.equal(await settle(page), 'ready');
    await page.click('nav.tabs button >> nth=3');
    const inputs = '.experiment input[type=number]';
    await page.fill(`${inputs} >> nth=0`, '6');
    await page.dispatchEvent(`${inputs} >> nth=0`, 'change');
    await page.fill(`${inputs} >> nth=1`, '3');
    await page.dispatchEvent(`${inputs} >> nth=1`, 'change');
    await page.fill(`${inputs} >> nth=2`, '1');
    await page.dispatchEvent(`${inputs} >> nth=2`, 'change');
    // The shipped result is shown at once (made by `attnlab position`, settings stated).
    await page.waitForSelector('.experiment .shipped', { timeout: 60_000 });
    assert.match(await page.textContent('.experiment .shipped'), /A saved result for SmolLM2-135M-Instruct \(key-value retrieval, 40 pairs, 5 positions × 8 trials, seed 0/);
    assert.equal((await page.$$('.u-curve circle')).length, 5);
    await page.click('.experiment button.primary');
    await page.waitForFunction(() => /3 rows in/.test(document.querySelector('.experiment').textContent), null, { timeout: 180_000 });
    assert.equal((await page.$$('.results tbody tr')).length, 3);
    assert.equal(await page.$$eval('.experiment .shipped', (e) => e.length), 0);
    assert.equal((await page.$$('.u-curve circle')).length, 3);
    assert.match(await page.textContent('.experiment'), /3 rows in/);
    // A long run, cancelled after its first trial: partial results, and the app still works.
    await page.fill(`${inputs} >> nth=2`, '20');
    await page.dispatchEvent(`${inputs} >> nth=2`, 'change');
    await page.click('.experiment button.primary');
    await page.waitForFunction(() => /[1-9]\d* of 60 trials/.test(document.querySelector('.experiment .progress')?.textContent ?? ''), null, { timeout: 120_000 });
    await page.click('.experiment button:has-text("Cancel")');
    await page.waitForFunction(() => /cancelled/.test(document.querySelector('.experiment').textContent), null, { timeout: 120_000 });
    assert.match(await page.evaluate(() => location.search), /view=position/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

const gemmaReference = JSON.parse(fs.readFileSync(new URL('../data/gemma3/forward.json', import.meta.url)));

test('switching models: Gemma 3 270M (MQA, sliding window) and SmolLM2 both match their references', async () => {
  const g = gemmaReference.cases[0];
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `?model=gemma3&text=${encodeURIComponent(g.text)}&layer=5&head=2&run=1`);
  try {
    assert.equal(await runUntilDone(page, 300_000), 'done');
    assert.equal(await page.inputValue('.model-picker select'), 'gemma3');
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.deepEqual(result.ids, g.ids, 'SentencePiece ids with BOS');
    let worst = 0;
    g.attention[5][2].forEach((row, i) => row.forEach((p, j) => { worst = Math.max(worst, Math.abs(result.attention['5.2'][i][j] - p)); }));
    assert.ok(worst <= 5e-4, `Gemma attention differs by ${worst}`);
    assert.equal(result.last_logits_top[0][0], g.last_logits_top64[0][0]);
    // Layer 5 is global, layer 4 local; the page says so. The all-heads view is one MQA group.
    assert.match(await page.textContent('.layer-kind'), /global layer/);
    await page.fill('input[name=layer]', '4');
    await page.dispatchEvent('input[name=layer]', 'change');
    await page.waitForFunction(() => /sliding window of the last 512/.test(document.querySelector('.layer-kind').textContent));
    await page.click('nav.tabs button >> nth=1');
    await page.waitForSelector('.model-view .compare');
    assert.match(await page.textContent('.model-view .compare'), /Multi-query attention/);
    assert.match(await page.evaluate(() => location.search), /model=gemma3/);
    // The sink tab works on Gemma too: 18 layers × 4 heads, values from the same run.
    await page.click('nav.tabs button >> nth=2');
    await page.waitForSelector('.panel:not(.hidden) svg polyline');
    assert.equal(result.sink_mass_key0.length, 18);
    assert.ok(Math.abs(result.sink_mass_key0[5][1] - g.sink_mass_key0[5][1]) <= 1e-3);
    // Back to SmolLM2 with the picker: the page reloads on it, the text stays.
    await Promise.all([page.waitForURL(/model=smollm2/, { waitUntil: 'load' }), page.selectOption('.model-picker select', 'smollm2')]);
    // The switch re-runs the text on the new model: never an empty map.
    assert.equal(await settle(page), 'done');
    assert.equal(JSON.parse(await page.evaluate(() => window.attnlab.exportJson())).n_layers, 30);
    await page.fill('#attnlab-text', TEXT);
    await page.click('button.primary');
    assert.equal(await runUntilDone(page), 'done');
    const smol = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    compareWithReference(smol, 0, 0);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('inside this head: the steps of the selected query, what-if toggles on the whole map, colour scales, URL state', async () => {
  const explain = JSON.parse(fs.readFileSync(new URL('../data/explain.json', import.meta.url))).cases[0];
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `?text=${encodeURIComponent(explain.text)}&layer=${explain.layer}&head=${explain.head}&run=1`);
  try {
    assert.equal(await runUntilDone(page), 'done');
    await page.waitForSelector('.steps-table tbody tr');
    // One row per key of the last query, with transformers' probabilities.
    const probs = await page.$$eval('.steps-table tbody tr td:nth-child(5) .num', (c) => c.map((x) => Number(x.textContent)));
    assert.equal(probs.length, explain.probs.length);
    probs.forEach((p, j) => assert.ok(Math.abs(p - explain.probs[j]) < 1e-4, `key ${j}: ${p} vs ${explain.probs[j]}`));
    // Picking another query token explains its row.
    await page.click('.tokens button >> nth=4');
    await page.waitForFunction(() => document.querySelectorAll('.steps-table tbody tr').length === 5);
    // A what-if changes the whole map (not only the row) and says what changed; the export stays the model's.
    const before = await page.evaluate(() => document.querySelector('canvas[role=img]').toDataURL());
    await page.check('input[name=attnlab-whatif] >> nth=2');
    await page.waitForSelector('.whatif-summary');
    assert.match(await page.textContent('.whatif-summary'), /Without the causal mask: entropy .* future tokens/);
    await page.waitForFunction((b) => document.querySelector('canvas[role=img]').toDataURL() !== b, before);
    assert.match(await page.evaluate(() => location.search), /whatif=unmasked/);
    const exported = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    const rows = exported.attention[`${explain.layer}.${explain.head}`];
    assert.equal(rows[rows.length - 1].length, rows.length, 'exported rows stay causal');
    // Colour scale and hidden sink: in the legend and the URL; a reload restores them.
    await page.selectOption('.look-controls select', 'log');
    await page.check('.look-controls input[type=checkbox]');
    await page.waitForFunction(() => /scale=log/.test(location.search) && /sink=hide/.test(location.search));
    const url = await page.evaluate(() => location.href);
    await page.goto(url);
    await settle(page);
    assert.equal(await page.inputValue('.look-controls select'), 'log');
    assert.equal(await page.isChecked('.look-controls input[type=checkbox]'), true);
    assert.equal(await page.isChecked('input[name=attnlab-whatif] >> nth=2'), true);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('from scratch: the mini-lab computes every step at once, with the mask, two heads and editable weights', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, '?view=lab');
  try {
    await page.waitForSelector('.minilab .mat table');
    // X, Q, K, V, then QKᵀ, ÷√d, mask, softmax, ·V for one head (+ the three weight grids).
    assert.equal(await page.$$eval('.minilab .mat-row:not(details .mat-row) .mat', (m) => m.length), 9);
    // Each softmax row sums to 1 and the upper triangle is 0 with the mask on.
    const probs = await page.evaluate(() => {
      const fig = [...document.querySelectorAll('.minilab figure.mat')].find((f) => f.querySelector('figcaption strong').textContent === 'softmax');
      return [...fig.querySelectorAll('tbody tr')].map((r) => [...r.querySelectorAll('td')].map((td) => Number(td.title.split(': ').pop())));
    });
    assert.equal(probs.length, 5);
    probs.forEach((row, i) => {
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5, `row ${i} sums to 1`);
      row.forEach((p, j) => { if (j > i) assert.equal(p, 0); });
    });
    const masked = () => page.$$eval('.minilab td', (tds) => tds.filter((td) => td.textContent === '−∞').length);
    assert.equal(await masked(), 10, 'the 10 future cells of a 5 × 5 mask');
    // The buggy mask (0 instead of −∞): no −∞ left, the future gets weight, and the page says how much.
    await page.selectOption('.lab-controls select[aria-label=mask]', 'zero');
    await page.waitForFunction(() => ![...document.querySelectorAll('.minilab td')].some((td) => td.textContent === '−∞'));
    assert.match(await page.textContent('.minilab .notice'), /e⁰ = 1.*% of a word's attention lands on words that come after it/);
    await page.selectOption('.lab-controls select[aria-label=mask]', 'none');
    await page.waitForFunction(() => !document.querySelector('.minilab .notice'));
    // Why ÷√d: eight widths measured against √d; scaled, the spread is 1.
    assert.equal(await page.locator('.scale-lab svg circle').count(), 9);
    const spread = async () => Number((await page.textContent('.scale-numbers tbody tr td >> nth=0')).trim());
    const at64 = await spread();
    assert.ok(Math.abs(at64 / 8 - 1) < 0.1, `spread at d = 64: ${at64}`);
    assert.ok(Math.abs(Number((await page.textContent('.scale-numbers tbody tr td >> nth=1')).trim()) - 1) < 0.1);
    // (A range input cannot be typed into: set it as a drag would, with its input event.)
    await page.$eval('.scale-lab input[aria-label="head width d"]', (el) => { el.value = '9'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.waitForFunction(() => /d = 512/.test(document.querySelector('.scale-numbers th').textContent));
    assert.ok(Math.abs(await spread() / Math.sqrt(512) - 1) < 0.1);
    // Two heads of 4 dims: two rows of five steps.
    await page.check('.lab-controls input[type=checkbox] >> nth=0');
    await page.waitForFunction(() => document.querySelectorAll('.minilab > .mat-row, .minilab .mat-row').length >= 3);
    assert.match(await page.textContent('.minilab'), /head 1 \(dims 4–7\)/);
    // Editing a weight updates Q.
    const q0 = await page.textContent('.minilab figure.mat:nth-child(2) tbody tr td');
    await page.click('.minilab details summary');
    await page.fill('.minilab details input >> nth=0', '5');
    await page.dispatchEvent('.minilab details input >> nth=0', 'change');
    await page.waitForFunction((q) => document.querySelector('.minilab figure.mat:nth-child(2) tbody tr td').textContent !== q, q0);
    assert.match(await page.evaluate(() => location.search), /view=lab/);
    // The link opens the real model's head view.
    await page.click('.lab-controls button:has-text("real model")');
    assert.equal(await page.getAttribute('nav.tabs button >> nth=0', 'aria-selected'), 'true');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('head patterns: every head scored, induction heads found far above the rest, a click opens the head', async () => {
  const heads = JSON.parse(fs.readFileSync(new URL('../data/heads.json', import.meta.url))).cases[0];
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `?text=${encodeURIComponent(heads.text)}&view=patterns&run=1`);
  try {
    assert.equal(await runUntilDone(page), 'done');
    await page.waitForSelector('.pattern-grid .pattern-cell');
    assert.equal(await page.$$eval('.pattern-grid .pattern-cell', (c) => c.length), 270);
    // The grid's values are transformers' (first-token score of layer 18 head 8 in the title).
    const title = await page.getAttribute('.pattern-grid tbody tr:nth-child(19) td:nth-child(10) button', 'title');
    assert.ok(Math.abs(Number(title.split(' ').pop()) - heads.first_token[18][8]) < 1e-3, title);
    await page.check('input[name=attnlab-pattern][value=previous]');
    assert.match(await page.textContent('.pattern-side'), /Top previous token heads/);
    // The induction diagnostic: its best head scores far above the median.
    await page.click('.pattern-controls button');
    await page.waitForSelector('.induction-seq', { timeout: 240_000 });
    const values = await page.$$eval('.pattern-grid .pattern-cell', (c) => c.map((b) => Number(b.title.split(' ').pop())).sort((a, b) => a - b));
    assert.ok(values[values.length - 1] > 0.3 && values[values.length - 1] > 10 * values[135], `best ${values[values.length - 1]}, median ${values[135]}`);
    // A click opens the head.
    await page.click('.ranked button >> nth=0');
    assert.equal(await page.getAttribute('nav.tabs button >> nth=0', 'aria-selected'), 'true');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('knock-out: shift-click picks heads, the next-token distribution moves as transformers says, the URL keeps it, reset returns', async () => {
  const ref = JSON.parse(fs.readFileSync(new URL('../data/ablate.json', import.meta.url))).cases[0];
  assert.deepEqual(ref.heads, ['14.5']);
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `?text=${encodeURIComponent(ref.text)}&view=patterns&run=1`);
  try {
    assert.equal(await runUntilDone(page), 'done');
    const cell = '.pattern-grid tbody tr:nth-child(15) td:nth-child(7) button'; // layer 14, head 5
    await page.waitForSelector(cell);
    // Hover shows the head's thumbnail and scores.
    await page.hover(cell);
    await page.waitForSelector('.pattern-preview canvas');
    assert.match(await page.textContent('.pattern-preview'), /layer 14 · head 5/);
    await page.click(cell, { modifiers: ['Shift'] });
    assert.equal(await page.$$eval('.pattern-cell.picked', (c) => c.length), 1);
    assert.match(await page.textContent('.picked-list'), /Picked: 14\.5/);
    await page.click('button.knock-out');
    await page.waitForSelector('.next-compare', { timeout: 120_000 });
    assert.match(page.url(), /[?&]ablate=14\.5(&|$)/);
    const caption = await page.textContent('.next-compare caption');
    const kl = Number(caption.match(/= ([0-9.]+) nats/)[1]);
    assert.ok(Math.abs(kl - ref.kl_last) < 1e-3 && kl > 0, `KL ${kl} vs transformers ${ref.kl_last}`);
    // Before and after differ; Δ log p per token matches transformers on hover.
    const rows = await page.$$eval('.next-compare tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1).map((td) => Number(td.title.split('= ')[1]))));
    assert.ok(rows.length >= 8 && rows.some(([b, a]) => Math.abs(b - a) > 1e-4), JSON.stringify(rows));
    const titles = await page.$$eval('.delta-strip .token', (t) => t.map((x) => x.title));
    assert.equal(titles.length, ref.ids.length);
    ref.delta_logprob.forEach((d, i) => {
      const got = Number(titles[i + 1].match(/Δ ([-+0-9.]+)/)[1]);
      assert.ok(Math.abs(got - d) < 2e-3, `token ${i + 1}: Δ ${got} vs ${d}`);
    });
    // Later layers' maps under the knock-out.
    await page.waitForSelector('.compare-maps canvas');
    assert.equal(await page.$$eval('.compare-maps figure', (f) => f.length), 2);
    // The URL brings the knock-out back.
    await page.goto(page.url().replace('&run=1', '') + '&run=1');
    assert.equal(await runUntilDone(page), 'done');
    await page.waitForSelector('.next-compare', { timeout: 120_000 });
    assert.equal(await page.$$eval('.pattern-cell.picked', (c) => c.length), 1);
    // Reset: the plain run, nothing in the URL.
    await page.click('button.reset-knock-out');
    await page.waitForFunction(() => !document.querySelector('.next-compare') && !location.search.includes('ablate'));
    assert.equal(await page.$$eval('.pattern-cell.picked', (c) => c.length), 0);
    // Similarity: every pair of heads, and the sentence about them.
    await page.waitForSelector('.alike-summary', { timeout: 120_000 });
    assert.match(await page.textContent('.alike-summary'), /of the 270 heads fall into \d+ groups?/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('cost of attention: a small sweep on WebGPU measures the CPU and both kernels, fits slopes, and exports a CSV with every row', async () => {
  const { browser, page, errors } = await open(WEBGPU_ARGS, '?view=cost&backend=webgpu&run=0');
  try {
    await page.waitForFunction(() => document.documentElement.dataset.attnlabBackend === 'webgpu', null, { timeout: 240_000 });
    // The FLOP split and the KV calculator need no run.
    assert.match(await page.textContent('.cost'), /attention needs more arithmetic than all the linear layers together from n = 6144/);
    assert.match(await page.textContent('.kv-table'), /Llama-2-7B.*512 KiB/s);
    await page.fill('.kv-controls input', '4096');
    await page.dispatchEvent('.kv-controls input', 'change');
    assert.match(await page.textContent('.kv-table'), /2\.0 GiB/);
    await page.selectOption('.cost-controls select', '512');
    await page.click('button.run-cost');
    await page.waitForSelector('.cost-plot .legend span.swatch', { timeout: 300_000 });
    await page.waitForFunction(() => !document.querySelector('.cost-controls progress'), null, { timeout: 300_000 });
    const legend = await page.textContent('.cost-plots');
    assert.match(legend, /GPU flash kernel — slope/);
    assert.match(legend, /GPU naive kernel — slope/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('.cost-plots .exports button >> nth=0')]);
    const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'n,kernel,ms,scratch_bytes');
    const rows = csv.slice(1).map((l) => l.split(','));
    for (const k of ['cpu', 'flash', 'naive']) {
      assert.deepEqual(rows.filter((r) => r[1] === k).map((r) => Number(r[0])), [128, 256, 512], k);
    }
    assert.ok(rows.every((r) => Number(r[2]) > 0 && Number(r[3]) > 0));
    // The naive kernel's scratch grows like n², flash's like n.
    const mem = (k, n) => Number(rows.find((r) => r[1] === k && Number(r[0]) === n)[3]);
    assert.ok(mem('naive', 512) / mem('naive', 128) > 12 && mem('flash', 512) / mem('flash', 128) < 5);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('ten runs fired within a second end with the last text and never show an older one; a head chosen mid-run applies to the new result', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `?text=${encodeURIComponent('A first text.')}&run=1`);
  try {
    assert.equal(await runUntilDone(page), 'done');
    // Record every text the page shows from now on.
    await page.evaluate(() => {
      window.seen = [];
      setInterval(() => {
        const j = window.attnlab.exportJson();
        const t = j && JSON.parse(j).text;
        if (t && window.seen[window.seen.length - 1] !== t) window.seen.push(t);
      }, 10);
    });
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(20);
    const texts = Array.from({ length: 10 }, (_, i) => `${long}Run number ${i}.`);
    const t0 = Date.now();
    for (const t of texts) {
      await page.fill('#attnlab-text', t);
      await page.press('#attnlab-text', 'Control+Enter');
    }
    // Fired faster than one run takes (~3 s for this text on the CI machine), so runs overlap;
    // not a speed bar — typing into the box takes 0.1–0.2 s per text under load.
    assert.ok(Date.now() - t0 < 3000, `fired in ${Date.now() - t0} ms`);
    // A head switch while the run is under way.
    await page.fill('.controls label:has-text("Layer") input', '2');
    await page.dispatchEvent('.controls label:has-text("Layer") input', 'change');
    await page.fill('.controls label:has-text("Head") input', '5');
    await page.dispatchEvent('.controls label:has-text("Head") input', 'change');
    await page.waitForFunction((last) => {
      const j = window.attnlab.exportJson();
      return document.documentElement.dataset.attnlabState === 'done' && j && JSON.parse(j).text === last && JSON.parse(j).attention['2.5'];
    }, texts[9], { timeout: 240_000 });
    await page.waitForTimeout(300);
    const seen = await page.evaluate(() => window.seen);
    assert.deepEqual(seen, ['A first text.', texts[9]], 'only the first and the last text were ever shown');
    assert.match(await page.textContent('.head-title'), /Layer 2 · head 5/);
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.equal(result.attention['2.5'].length, result.ids.length);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('hostile URL parameters are clamped or refused with a message, and the page still runs', async () => {
  const q = `?text=${encodeURIComponent('Hello there.')}&layer=999&head=-1&view=bogus%3Cb%3E&scale=weird&whatif=zzz&backend=quantum&ablate=99.99&run=1`;
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, q);
  try {
    assert.equal(await runUntilDone(page), 'done');
    const notice = await page.textContent('.notice');
    for (const m of [/head=-1 is not a whole number 0, 1, 2/, /view=bogus<b> is not one of/, /scale=weird is not one of/, /whatif=zzz is not one of/, /backend=quantum is not one of/, /layer=999 is beyond this model's 30 layers; layer 29 is shown/, /ablate=99\.99 is not heads of this model/]) {
      assert.match(notice, m);
    }
    assert.equal(await page.$$eval('.notice b', (b) => b.length), 0, 'markup in a parameter stays text');
    assert.equal(await page.inputValue('.controls label:has-text("Layer") input'), '29');
    assert.equal(await page.inputValue('.controls label:has-text("Head") input'), '0');
    assert.equal(await page.getAttribute('nav.tabs button >> nth=0', 'aria-selected'), 'true');
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.ok(result.attention['29.0']);
    assert.doesNotMatch(page.url(), /ablate=/);
    await page.click('.notice button');
    assert.equal(await page.$('.notice'), null);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

// The CLI twin (built by `cargo test --release`, which `make test` runs first).
function cli(args, input) {
  const r = spawnSync(new URL('../../target/release/attnlab', import.meta.url).pathname, args, { input, encoding: 'utf8', maxBuffer: 1 << 30, cwd: new URL('../..', import.meta.url).pathname });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

// An ASCII text of exactly `n` tokens, cut at a token boundary by the CLI's tokenizer.
function textOfTokens(n) {
  const words = ['river', 'market', 'lantern', 'seven', 'quietly', 'orange', 'engine', 'whisper', 'garden', 'copper', 'northern', 'ladder'];
  const parts = [];
  for (let i = 0; parts.join(' ').length < n * 6; i++) parts.push(`${words[i % 12]} ${words[(i * 5 + 3) % 12]} ${i % 97}${i % 7 === 0 ? '.' : ','}`);
  const tokens = JSON.parse(cli(['tokenize', '--text', '-', '--json'], parts.join(' '))).tokens;
  assert.ok(tokens.length >= n);
  return tokens.slice(0, n).join('');
}

test('full context: a text beyond 8192 tokens gets an offer to cut, a 4000-token text runs on the CPU worker and its exported rows equal the CLI\'s', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, '?layer=3&head=4&run=0');
  try {
    assert.equal(await settle(page), 'ready');
    // Beyond the context: refused with the numbers and an offer; nothing runs, nothing is cut.
    const huge = textOfTokens(9000);
    await page.fill('#attnlab-text', huge);
    await page.click('button.primary');
    await page.waitForSelector('.too-long', { timeout: 60_000 });
    assert.match(await page.textContent('.too-long'), /has 9000 tokens: this model reads at most 8192 tokens\. Nothing was cut\./);
    assert.match(await page.textContent('.too-long button'), /Keep the first 8192 tokens and run/);
    assert.equal((await page.inputValue('#attnlab-text')).length, huge.length);

    const text = textOfTokens(4000);
    await page.fill('#attnlab-text', text);
    await page.click('button.primary');
    assert.equal(await runUntilDone(page, 600_000), 'done');
    assert.equal(await page.$$eval('.too-long', (e) => e.length), 0);
    assert.match(await page.textContent('.timings'), /4000 tokens .* engine memory \d+ MiB/);
    // A long run's result carries the pooled map only; the JSON export asks for the rows.
    assert.equal(await page.getAttribute('canvas[role=img]', 'data-pooled'), 'true');
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click('.exports button:has-text("JSON")')]);
    const result = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
    assert.equal(result.ids.length, 4000);
    const rows = result.attention['3.4'];
    assert.equal(rows.length, 4000);
    const ref = JSON.parse(cli(['inspect', '--text', '-', '--heads', '3.4', '--json'], text));
    assert.deepEqual(result.ids, ref.ids);
    let worst = 0;
    for (const q of [0, 1234, 3999]) {
      assert.equal(rows[q].length, q + 1);
      rows[q].forEach((p, k) => { worst = Math.max(worst, Math.abs(p - ref.attention['3.4'][q][k])); });
    }
    assert.ok(worst <= 1e-4, `rows differ from the CLI's by ${worst}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a run during an experiment waits and says so, the cancelled experiment keeps its trials; a model opened mid-run replaces the run', async () => {
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, '?view=position&layer=3&head=4&run=0');
  try {
    assert.equal(await settle(page), 'ready');
    const inputs = '.experiment input[type=number]';
    for (const [i, v] of [[0, '6'], [1, '3'], [2, '20']]) {
      await page.fill(`${inputs} >> nth=${i}`, v);
      await page.dispatchEvent(`${inputs} >> nth=${i}`, 'change');
    }
    await page.click('.experiment button.primary');
    await page.waitForFunction(() => /[1-9]\d* of 60 trials/.test(document.querySelector('.experiment .progress')?.textContent ?? ''), null, { timeout: 120_000 });
    await page.fill('#attnlab-text', TEXT);
    await page.press('#attnlab-text', 'Control+Enter');
    await page.waitForSelector('.waiting', { timeout: 30_000 });
    assert.match(await page.textContent('.waiting'), /waiting for the experiment to finish/);
    await page.click('.experiment button:has-text("Cancel")');
    assert.equal(await runUntilDone(page, 240_000), 'done');
    compareWithReference(JSON.parse(await page.evaluate(() => window.attnlab.exportJson())), 3, 4);
    await page.waitForFunction(() => /cancelled/.test(document.querySelector('.experiment').textContent), null, { timeout: 60_000 });
    assert.ok((await page.$$('.results tbody tr')).length >= 1, 'the trials done are kept');

    // Another model opened while a run is under way: the old run is never shown, the text
    // runs again on the new model.
    const text = 'The lighthouse keeper counted the ships that passed the rocks every night. '.repeat(30);
    await page.fill('#attnlab-text', text);
    await page.press('#attnlab-text', 'Control+Enter');
    await page.setInputFiles('input[type=file]', new URL('../../dist/models/gemma-3-270m-q4_k_m.gguf', import.meta.url).pathname);
    await page.waitForFunction(() => {
      const j = window.attnlab.exportJson();
      return document.documentElement.dataset.attnlabState === 'done' && j && JSON.parse(j).n_layers === 18;
    }, null, { timeout: 400_000 });
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.equal(result.text, text);
    assert.match(result.model, /gemma/i);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a 1 MB text in the URL is refused with the limit and an offer to cut, and the link does not carry it', async () => {
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(22_223).slice(0, 1_000_000);
  const { browser, page, errors } = await open(NO_WEBGPU_ARGS, `?text=${text.replaceAll(' ', '+')}&run=1`);
  try {
    await page.waitForSelector('.too-long', { timeout: 120_000 });
    assert.match(await page.textContent('.too-long'), /has \d{5,} tokens: this model reads at most 8192 tokens/);
    assert.equal((await page.inputValue('#attnlab-text')).length, 1_000_000);
    assert.match(await page.textContent('.url-note'), /the link keeps everything but the text/);
    assert.ok((await page.evaluate(() => location.search.length)) < 1000);
    // Cut where the offer says: the first 8192 tokens run (the test stops at the cut itself).
    await page.click('.too-long button');
    assert.ok((await page.inputValue('#attnlab-text')).length < 1_000_000);
    assert.equal(await page.$$eval('.too-long', (e) => e.length), 0);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
