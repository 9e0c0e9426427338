// What the model knows at each layer (issue 26): "A word through the layers" — one word in two
// texts, their residual vectors compared after the embedding and every block — and "Queries and
// keys as points" — the shown head's queries and keys on their two principal axes. The numbers
// are the native ones (`tests/lens.rs` checks them against a plain recomputation and the GPU);
// here: they are drawn with axes, hover values, keyboard, the URL and CSV exports. Debian's
// Chromium, headless, CPU path (WebGPU off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const site = await serve(new URL('../../dist', import.meta.url).pathname);
test.after(() => site.close());
const done = (page) => page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'done', null, { timeout: 240_000 });

test('a word through the layers: the two banks start as one vector and drift apart; the URL keeps the pair', async () => {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${site.url}?backend=cpu&view=vectors`);
    await done(page);
    await page.waitForSelector('.vectors-chart .cos-point');
    assert.equal(await page.locator('.vectors-chart .cos-point').count(), 31, 'the embedding and 30 layers');
    const finding = await page.locator('.vectors-finding').textContent();
    assert.match(finding, /^“ bank” in the first text and “ bank” in the second: cosine 1\.00 after the embedding, 0\.[0-8]\d after the last layer(, lowest 0\.\d\d after layer \d+)?\.$/);
    assert.deepEqual(await page.$$eval('.vectors-chart text[text-anchor=middle][font-size="11"]', (t) => t.map((x) => x.textContent)), ['emb', '5', '10', '15', '20', '25', '29']);
    // Hover and keyboard give a layer's values and the nearest tokens.
    await page.focus('.vectors-chart');
    await page.keyboard.press('ArrowRight');
    assert.match(await page.locator('.vectors .hover-readout').textContent(), /^after layer 0: cosine 0\.9\d\d; the first would predict “ and” \d+%/);
    assert.equal(await page.locator('.vectors-nearest tbody tr').count(), 30);
    // Another pair: the URL keeps it, a link reopens it.
    await page.fill('.vectors-b', 'The bank raised its rates.');
    await page.dispatchEvent('.vectors-b', 'change');
    await page.click('.run-vectors');
    await page.waitForFunction(() => /“ bank” in the second/.test(document.querySelector('.vectors-finding')?.textContent ?? '') && /second=The\+bank/.test(location.search), null, { timeout: 120_000 });
    const again = await browser.newPage();
    again.on('pageerror', (e) => errors.push(String(e)));
    await again.goto(page.url());
    await done(again);
    assert.equal(await again.inputValue('.vectors-b'), 'The bank raised its rates.');
    // A word missing from a text is said in words.
    await again.fill('.vectors-word', 'river');
    await again.dispatchEvent('.vectors-word', 'change');
    await again.click('.run-vectors');
    await again.waitForFunction(() => /“river” is not a word of the second text/.test(document.body.textContent));
    for (const [n, ext] of [[0, 'csv'], [1, 'json']]) {
      const download = page.waitForEvent('download');
      await page.click(`.vectors .exports button >> nth=${n}`);
      assert.match((await download).suggestedFilename(), new RegExp(`attnlab-word-through-layers\\.${ext}$`));
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('queries and keys as points: every token twice, links to what each query reads most, hover names them', async () => {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${site.url}?backend=cpu&view=qk&layer=15&head=0&text=${encodeURIComponent('The dog chased the cat because it was hungry.')}`);
    await done(page);
    await page.waitForSelector('.qk-chart .qk-key');
    assert.equal(await page.locator('.qk-chart .qk-key').count(), 10);
    assert.equal(await page.locator('.qk-chart .qk-query').count(), 10);
    assert.equal(await page.locator('.qk-chart .qk-link').count(), 19, 'two links per query (the first token reads only itself)');
    assert.equal(await page.locator('.qk-chart .qk-link.strong').count(), 2, 'the picked query (the last token) drawn strong');
    assert.match(await page.locator('.qk-chart').getAttribute('aria-label'), /layer 15 head 0/);
    assert.match(await page.locator('.qk-chart text >> nth=-1').textContent(), /./);
    await page.locator('.qk-chart .qk-query >> nth=6').hover();
    assert.match(await page.locator('.qk .hover-readout').textContent(), /^query of “ it” \(token 6\) reads most “.+” \d+%, “.+” \d+%$/);
    // Another head: the points follow.
    await page.goto(`${site.url}?backend=cpu&view=qk&layer=3&head=2&text=${encodeURIComponent('The dog chased the cat because it was hungry.')}`);
    await done(page);
    await page.waitForFunction(() => /layer 3 head 2/.test(document.querySelector('.qk-chart')?.getAttribute('aria-label') ?? ''));
    for (const [n, ext] of [[0, 'csv'], [1, 'json']]) {
      const download = page.waitForEvent('download');
      await page.click(`.qk .exports button >> nth=${n}`);
      assert.match((await download).suggestedFilename(), new RegExp(`attnlab-qk-L3-H2\\.${ext}$`));
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('two texts side by side: both maps drawn, heads ranked by their change, nothing before the differing word changes', async () => {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${site.url}?backend=cpu&view=compare&layer=2&head=4`);
    await done(page);
    await page.waitForSelector('.compare-rank tbody tr');
    assert.equal(await page.locator('.compare-maps canvas').count(), 2, 'the head drawn on both texts');
    assert.equal(await page.locator('.compare-rank tbody tr').count(), 12);
    // The native ranking (tests/analysis.rs holds it to a plain recomputation): 2.4 changes most on the trophy pair.
    assert.equal(await page.locator('.compare-rank tbody tr >> nth=0').getAttribute('data-head'), '2.4');
    assert.match(await page.locator('.compare-rank tbody tr >> nth=0').textContent(), /0\.17\d/);
    assert.match(await page.locator('.compare-finding').textContent(), /The texts part at token 13 \(“big” \/ “small”\).*Layer 2 head 4 ranks 1 of 270/);
    assert.match(await page.locator('.compare-next').textContent(), /after the second: /);
    // The difference cell by cell where the texts can differ: rows 13 and 14 over their keys.
    assert.equal(await page.locator('.compare-diff rect.diff-cell').count(), 14 + 15);
    assert.match(await page.locator('.compare-diff rect.diff-cell >> nth=0').textContent(), /^row "big\/small" \(13\) → key "The" \(0\): [0-9.]+ on the first text, [0-9.]+ on the second \([-+][0-9.]+\)$/);
    // Another head from the ranking; the URL keeps the view and the head.
    await page.click('.compare-rank tbody tr >> nth=1 >> button');
    await page.waitForFunction(() => /layer 9 head 3/.test(document.querySelector('.compare-side h4')?.textContent ?? '') && /view=compare/.test(location.search) && /layer=9/.test(location.search), null, { timeout: 120_000 });
    // Other texts.
    await page.fill('.compare-b', 'The trophy did not fit in the suitcase because it was too small.');
    await page.dispatchEvent('.compare-b', 'change');
    await page.click('.run-compare');
    await page.waitForFunction(() => /part at token 2 /.test(document.querySelector('.compare-finding')?.textContent ?? ''), null, { timeout: 120_000 });
    assert.match(page.url(), /second=The\+trophy\+did\+not/);
    for (const [n, ext] of [[0, 'csv'], [1, 'json']]) {
      const download = page.waitForEvent('download');
      await page.click(`.two-texts .exports button >> nth=${n}`);
      assert.match((await download).suggestedFilename(), new RegExp(`attnlab-two-texts\\.${ext}$`));
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
