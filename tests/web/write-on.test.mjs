// The model writes under a what-if and under each cache policy, in the page's worker (issue 25):
// "…and through the model" writes the text on with the change and without — the plain row is
// transformers' greedy text (`tests/data/generate-smollm2.json`, 24 tokens, no near-ties in
// that case), the changed row departs from it and says where; "Why sinks matter" writes the
// reader's text on under the four caches, each row saying how many keys its last step read.
// Debian's Chromium, headless, CPU path (WebGPU off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const ref = JSON.parse(fs.readFileSync(new URL('../data/generate-smollm2.json', import.meta.url))).cases[0];
const site = await serve(new URL('../../dist', import.meta.url).pathname);
test.after(() => site.close());

const rowIds = (page, sel) => page.$$eval(`${sel} .wtok`, (t) => t.map((x) => Number(x.dataset.id)));

test('the model writes on with a what-if and without, and under each cache policy', async () => {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${site.url}?backend=cpu&text=${encodeURIComponent(ref.text)}&layer=15&head=0&view=inside`);
    await page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'done', null, { timeout: 240_000 });
    await page.selectOption('.through-what', 'unscaled');
    await page.click('.write-through');
    await page.waitForSelector('.write-on[data-owner="through"] .write-progress progress');
    await page.waitForFunction(() => document.querySelectorAll('.write-on[data-owner="through"] tbody tr').length === 2 && !document.querySelector('.write-on .write-progress'), null, { timeout: 240_000 });
    const plain = await rowIds(page, '.write-on[data-owner="through"] tr[data-variant="plain"]');
    assert.deepEqual(plain, ref.generated, 'the plain row is greedy decoding as transformers writes it');
    const changed = await rowIds(page, '.write-on[data-owner="through"] tbody tr:nth-child(2)');
    assert.equal(changed.length, 24);
    const from = changed.findIndex((id, t) => id !== plain[t]);
    assert.ok(from >= 0, 'no ÷√d changes what the model writes');
    assert.match(await page.locator('.write-on[data-owner="through"] tbody tr:nth-child(2) th').textContent(), new RegExp(`skip ÷√d .* in layers 0–29departs from the first row at token ${from + 1}`));
    assert.equal(await page.locator('.write-on[data-owner="through"] tbody tr:nth-child(2) .wtok.departed').count(), 24 - from);
    assert.match(await page.locator('.write-on[data-owner="through"] .wtok').first().getAttribute('title'), /^token 1: ".*", probability [0-9.]+%; the likeliest were /);

    // Why sinks matter: the reader's own text under four caches of 16 keys and 4 first tokens.
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(5) + 'Then the fox';
    await page.goto(`${site.url}?backend=cpu&text=${encodeURIComponent(text)}&view=sinks`);
    await page.waitForFunction(() => document.documentElement.dataset.attnlabState === 'done', null, { timeout: 240_000 });
    await page.fill('.streaming-controls input[type=number] >> nth=0', '16');
    await page.dispatchEvent('.streaming-controls input[type=number] >> nth=0', 'change');
    await page.click('.run-streaming-yours');
    await page.waitForFunction(() => /Computed here/.test(document.querySelector('.streaming-figure')?.textContent ?? ''), null, { timeout: 240_000 });
    assert.match(await page.locator('.write-streaming').textContent(), /after your text/);
    await page.click('.write-streaming');
    await page.waitForFunction(() => document.querySelectorAll('.write-on[data-owner="sinks"] tbody tr').length === 4 && !document.querySelector('.write-on .write-progress'), null, { timeout: 240_000 });
    const rows = await page.$$eval('.write-on[data-owner="sinks"] tbody tr', (r) => r.map((x) => [x.dataset.variant, Number(x.querySelector('td.num').textContent), x.querySelectorAll('.wtok').length]));
    const n = Number(rows[0][1]); // dense: every key up to the last token read
    assert.deepEqual(rows, [['plain', n, 24], ['window 16', 16, 24], ['sinks+window 4+16', 20, 24], ['no-key0', n - 1, 24]]);
    assert.match(await page.locator('.write-on[data-owner="sinks"] tbody tr:nth-child(2) th').textContent(), /only the last 16 tokens \(window\)/);
    const download = page.waitForEvent('download');
    await page.click('.write-on[data-owner="sinks"] .exports button');
    assert.match((await download).suggestedFilename(), /attnlab-written-sinks\.json$/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
