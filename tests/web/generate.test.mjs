// The model writes in the page (CPU worker, Chromium headless): `?text=…&gen=N&temperature=0
// &run=1` prefills then writes N tokens — transformers' greedy tokens (tests/data/
// generate-smollm2.json) — staying `running` until the last one; the strip and the map grow;
// Stop halts after the step under way; a branch continues from the chosen token; "Without the cache"
// times the same steps; a reload of the URL writes the same sampled text; a run fired
// mid-generation supersedes it and nothing of it stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const srv = await serve(new URL('../../dist', import.meta.url).pathname);
test.after(() => srv.close());

const ref = JSON.parse(fs.readFileSync(new URL('../data/generate-smollm2.json', import.meta.url)));
const state = (page) => page.evaluate(() => document.documentElement.dataset.attnlabState);
const exported = async (page) => JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
const done = (page, timeout = 300_000) => page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'done', null, { timeout });
const written = (page) => page.evaluate(() => document.querySelectorAll('.gen-token').length);

async function withPage(fn) {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await fn(page);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
}

test('gen=N writes transformers\' greedy tokens as they come, then every view has the whole text', async () => {
  const c = ref.cases[0];
  const n = 8;
  const exact = Math.min(n, (c.steps.findIndex((s) => s.gap < 0.01) + 1) || n);
  await withPage(async (page) => {
    await page.goto(`${srv.url}?text=${encodeURIComponent(c.text)}&gen=${n}&temperature=0&run=1&layer=3&head=1`);
    // Tokens stream in while the page stays `running`.
    await page.waitForFunction(() => document.querySelectorAll('.gen-token').length >= 1, null, { timeout: 300_000 });
    const seen = [];
    while ((await state(page)) !== 'done') {
      seen.push([await written(page), await state(page)]);
      await page.waitForTimeout(50);
    }
    const midway = seen.filter(([k, s]) => k >= 1 && k < n);
    assert.ok(midway.length > 0, `tokens were seen arriving one by one: ${JSON.stringify(seen.slice(0, 20))}`);
    assert.ok(midway.every(([, s]) => s === 'running'), 'running until the last token');
    const j = await exported(page);
    assert.equal(j.generated.length, n);
    assert.deepEqual(j.generated.slice(0, exact), c.generated.slice(0, exact), 'greedy tokens equal transformers\' (up to a near-tie)');
    assert.equal(j.steps.length, n);
    assert.ok(j.steps.every((s) => s.prob > 0 && s.prob <= 1 && s.top.length === 5));
    assert.equal(j.timings_ms.decode.length, n);
    assert.ok(j.timings_ms.prefill > 0);
    // The run of the whole text: every view works on prompt + output.
    assert.deepEqual(j.ids, [...c.ids, ...j.generated]);
    assert.equal(j.tokens.length, c.ids.length + n);
    assert.equal(await page.evaluate(() => document.querySelectorAll('.tokens .token').length), c.ids.length + n);
    // The settings are in the URL, and the step is explained.
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('gen'), String(n));
    assert.equal(url.searchParams.get('temperature'), '0');
    assert.match(await page.textContent('.gen-step'), /reused the \d+ cached keys and values/);
    assert.match(await page.textContent('.gen-speed'), /Time to first token.*tokens\/s.*KV cache now/);
    assert.ok(await page.isVisible('.gen-times svg path.with-cache'), 'per-step times are plotted');

    // The same steps without the cache: both lines, same number of steps.
    await page.click('text=Without the cache');
    // Each replayed step's time arrives as it is measured; the whole list (prompt + n steps) at the end.
    await page.waitForFunction((n) => JSON.parse(window.attnlab.exportJson()).without_cache_ms?.length === n + 1, n, { timeout: 300_000 });
    const w = await exported(page);
    assert.equal(w.without_cache_ms.length, n + 1);
    assert.ok(await page.isVisible('.gen-times svg path.without-cache'));
    assert.deepEqual(w.generated, j.generated, 'the replay changes nothing written');

    // A branch: step 2's second alternative written instead, the first two tokens kept.
    await page.click('.gen-tokens .gen-token >> nth=2');
    const alts = j.steps[2].top;
    const pick = alts.findIndex(([id]) => id !== j.generated[2]);
    await page.click(`.gen-alternatives button.alt >> nth=${pick}`);
    await page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'running', null, { timeout: 30_000 }).catch(() => {});
    await done(page);
    const b = await exported(page);
    assert.deepEqual(b.generated.slice(0, 2), j.generated.slice(0, 2));
    assert.equal(b.generated[2], alts[pick][0], 'the chosen token is written at step 2');
    assert.equal(b.generated.length, n);
  });
});

test('Stop halts after the step under way; a run fired mid-generation supersedes it; a reload writes the same sampled text', async () => {
  const text = 'Once upon a time, in a small village by the sea,';
  await withPage(async (page) => {
    await page.goto(`${srv.url}?text=${encodeURIComponent(text)}&gen=200&temperature=0.8&seed=7&run=1`);
    // Stop is pressed inside the page the moment the third token shows (a round trip from
    // the test would let the worker write on meanwhile). The worker ends after the step under
    // way; one token may already be on its way to the page: at most two more than were shown.
    const atStop = await page.evaluate(() => new Promise((resolve) => {
      const press = () => {
        const k = document.querySelectorAll('.gen-token').length;
        if (k < 3) return false;
        document.querySelector('button.stop').click();
        resolve(k);
        return true;
      };
      if (press()) return;
      const watch = new MutationObserver(() => { if (press()) watch.disconnect(); });
      watch.observe(document.body, { childList: true, subtree: true });
    }));
    await done(page);
    const s = await exported(page);
    assert.equal(s.finish, 'stopped');
    assert.ok(s.generated.length <= atStop + 2, `stopped at ${s.generated.length} tokens, Stop pressed at ${atStop}`);
    assert.ok(s.generated.length >= atStop);

    // The URL keeps the settings: a reload writes the same text (a short one this time).
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('seed'), '7');
    url.searchParams.set('gen', '6');
    await page.goto(url.toString());
    await done(page);
    const first = await exported(page);
    await page.reload();
    await done(page);
    const again = await exported(page);
    assert.equal(first.generated.length, 6);
    assert.deepEqual(again.generated, first.generated, 'the same seed and settings write the same text');

    // A run fired mid-generation: the generation stops and nothing of it stays.
    url.searchParams.set('gen', '200');
    await page.goto(url.toString());
    await page.waitForFunction(() => document.querySelectorAll('.gen-token').length >= 2, null, { timeout: 300_000 });
    await page.press('#attnlab-text', 'Control+Enter');
    await done(page);
    await page.waitForTimeout(1500);
    const r = await exported(page);
    assert.equal(r.generated, undefined, 'no generation in the export');
    assert.equal(await page.locator('.generation').count(), 0, 'no generation on screen');
    assert.equal(r.ids.length, (await page.evaluate(() => document.querySelectorAll('.tokens .token').length)));
    assert.ok(r.ids.length < 20, `the prompt alone (${r.ids.length} tokens)`);
  });
});

test('<attn-lab view="generate"> writes in a course page: tokens, alternatives, the map, its export', async () => {
  const c = ref.cases[2];
  const n = 5;
  const exact = Math.min(n, (c.steps.findIndex((s) => s.gap < 0.01) + 1) || n);
  await withPage(async (page) => {
    await page.goto(`${srv.url}embed.html?view=generate&gen=${n}&temperature=0&text=${encodeURIComponent(c.text)}`);
    await page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'done', null, { timeout: 300_000 });
    const j = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.deepEqual(j.generated.slice(0, exact), c.generated.slice(0, exact));
    assert.equal(j.generated.length, n);
    assert.deepEqual(j.ids, [...c.ids, ...j.generated]);
    const shadow = await page.evaluate(() => {
      const r = document.querySelector('attn-lab').shadowRoot;
      return { tokens: r.querySelectorAll('.gen-token').length, alts: r.querySelectorAll('.gen-alternatives button').length, map: !!r.querySelector('canvas'), title: r.querySelector('.aw-title')?.textContent, generate: !!r.querySelector('button.generate') };
    });
    assert.deepEqual(shadow, { tokens: n, alts: 5, map: true, title: 'The model writes', generate: true });
  });
});

test('the lesson\'s writing section writes when scrolled to, and says what its questions answer', async () => {
  const c = ref.cases[0];
  await withPage(async (page) => {
    await page.goto(`${srv.url}lesson.html`);
    const el = page.locator('#writing-figure');
    await el.scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.querySelector('#writing-figure').dataset.state === 'done', null, { timeout: 300_000 });
    const j = JSON.parse(await page.evaluate(() => document.querySelector('#writing-figure').exportJson()));
    assert.equal(j.generated.length, 12);
    assert.deepEqual(j.generated.slice(0, 2), c.generated.slice(0, 2), '" Paris" "." as the lesson says');
    const texts = j.steps.slice(0, 2).map((s) => s.text);
    assert.deepEqual(texts, [' Paris', '.']);
  });
});
