// What-ifs through the whole model (issue 25): "Inside this head"'s what-ifs made inside the
// attention of chosen layers, in the page's worker, give transformers' numbers
// (`tests/data/whatif-smollm2.json`: KL at the last position within 2e-3, relative above 1;
// every Δ log p within 5e-3, to the three decimals shown); the URL keeps the choice, and a
// widget takes it as attributes. Debian's Chromium, headless, CPU path (WebGPU off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const cases = JSON.parse(fs.readFileSync(new URL('../data/whatif-smollm2.json', import.meta.url))).cases;
const find = (text, what, layers) => cases.find((c) => c.text === text && c.what === what && c.layers === layers);
const TEXT = cases[0].text;
const site = await serve(new URL('../../dist', import.meta.url).pathname);
const host = await serve(null, {
  pages: {
    '/lesson.html': `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="${site.url}embed.js"></script></head><body>
<attn-lab id="w" view="inside" text="${cases[10].text}" layer="15" head="0" through="unmasked" through-layers="all" loading="eager"></attn-lab></body></html>`,
  },
});
test.after(() => {
  site.close();
  host.close();
});

// The KL and every Δ log p a figure shows (`root`: a selector prefix).
async function shown(page, root) {
  await page.waitForSelector(`${root} .through .next-compare caption`, { timeout: 240_000 });
  const kl = Number((await page.locator(`${root} .through .next-compare caption`).textContent()).match(/= ([0-9.]+) nats/)[1]);
  const deltas = await page.$$eval(`${root} .through .delta-strip .token`, (t) => t.map((x) => Number(x.title.match(/Δ ([-+0-9.]+)/)?.[1])));
  return { kl, deltas };
}
function matches({ kl, deltas }, ref) {
  assert.ok(Math.abs(kl - ref.kl_last) <= 2e-3 * Math.max(1, ref.kl_last), `${ref.what} in ${ref.layers}: KL ${kl} vs transformers ${ref.kl_last}`);
  assert.equal(deltas.length, ref.delta_logprob.length + 1, 'a token per position, the first not predicted');
  ref.delta_logprob.forEach((d, i) => assert.ok(Math.abs(deltas[i + 1] - d) <= 5e-3, `${ref.what} in ${ref.layers}, token ${i + 1}: Δ ${deltas[i + 1]} vs ${d}`));
}

test('a what-if through the model changes the prediction as transformers says, the URL keeps it, a widget takes it as attributes', async () => {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    // From the URL: no ÷√d in every layer.
    await page.goto(`${site.url}?backend=cpu&text=${encodeURIComponent(TEXT)}&layer=15&head=0&through=unscaled&through_layers=all`);
    matches(await shown(page, ''), find(TEXT, 'unscaled', 'all'));
    assert.match(await page.locator('.through-finding').textContent(), /skip ÷√d .* in every layer: the next-token distribution moves by KL 1\.49\d nats/);
    assert.equal(await page.locator('.through .next-compare thead th:nth-child(3)').textContent(), 'with the change');

    // By hand: the first token hidden, in layer 15 only.
    await page.selectOption('.through-what', 'nosink');
    await page.click('.through-controls button:has-text("only layer 15")');
    await page.click('.run-through');
    await page.waitForFunction(() => /in layer 15:/.test(document.querySelector('.through-finding')?.textContent ?? ''), null, { timeout: 120_000 });
    matches(await shown(page, ''), find(TEXT, 'nosink', '15'));
    await page.waitForFunction(() => /through=nosink/.test(location.search) && /through_layers=15/.test(location.search));

    // The link reopens it; a bad range is refused in words; back to the plain model.
    await page.goto(page.url());
    matches(await shown(page, ''), find(TEXT, 'nosink', '15'));
    await page.fill('.through-layers', '40-50');
    await page.click('.run-through');
    assert.match(await page.locator('.through .notice').textContent(), /this model has layers 0 to 29/);
    await page.click('.reset-through');
    await page.waitForFunction(() => !document.querySelector('.through .next-compare') && !/through=/.test(location.search));

    // A widget on another origin: no causal mask in every layer, from its attributes.
    const lesson = await browser.newPage();
    lesson.on('pageerror', (e) => errors.push(String(e)));
    await lesson.goto(host.url + 'lesson.html');
    matches(await shown(lesson, '#w'), find(cases[10].text, 'unmasked', 'all'));
    const state = await lesson.evaluate(() => document.getElementById('w').state);
    assert.deepEqual([state.through, state['through-layers']], ['unmasked', 'all']);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('attention against effect: every head knocked out alone, its point where transformers puts it', async () => {
  const ablate = JSON.parse(fs.readFileSync(new URL('../data/ablate.json', import.meta.url))).cases[0];
  assert.deepEqual(ablate.heads, ['14.5']);
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${site.url}?backend=cpu&text=${encodeURIComponent(ablate.text)}&layer=14&head=5&q=7`);
    await page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'done', null, { timeout: 240_000 });
    await page.click('.run-effects');
    await page.waitForSelector('.effects-controls progress');
    await page.waitForSelector('.effects-chart circle', { timeout: 300_000 });
    assert.equal(await page.locator('.effects-chart circle.effect-point').count(), 270);
    // Head 14.5 (the larger point: the head shown) moves log p of "hungry" as transformers' knock-out does.
    const title = await page.locator('.effects-chart circle.current title').textContent();
    assert.match(title, /^layer 14 head 5: attention [0-9.]+, Δ log p/);
    const d = Number(title.match(/Δ log p ([-+0-9.]+)/)[1]);
    assert.ok(Math.abs(d - ablate.delta_logprob[7]) <= 5e-3, `Δ log p ${d} vs transformers ${ablate.delta_logprob[7]}`);
    // Axes, words, another key, an export.
    assert.match(await page.locator('.effects-chart').getAttribute('aria-label'), /attention from " was" to .* against the change in log p of " hungry"/);
    assert.match(await page.locator('.effects-finding').textContent(), /Look most at .*Needed most for " hungry"/);
    await page.selectOption('.effects-key', '4');
    await page.waitForFunction(() => /to " cat"/.test(document.querySelector('.effects-chart')?.getAttribute('aria-label') ?? ''));
    const download = page.waitForEvent('download');
    await page.click('.effects .exports button');
    assert.match((await download).suggestedFilename(), /attention-vs-effect\.csv$/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
