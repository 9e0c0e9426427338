// End-to-end tests of the embeddable widgets (dist/embed.js, embed.html, lesson.html) in
// Debian's Chromium, CPU mode, through each element's contract (dataset.state / source /
// backend, exportJson()) and the test server's request counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const reference = JSON.parse(fs.readFileSync(new URL('../data/forward.json', import.meta.url)));
const MODEL = '/models/SmolLM2-135M-Instruct.Q4_1.gguf';
const TEXT0 = reference.cases[0].text;
const TEXT1 = reference.cases[1].text;

const hostile = `<style>* { all: revert !important; } canvas { display: none !important; } html { font-size: 64px !important; } body { font-size: 48px !important; line-height: 3 !important; } div { padding: 40px !important; }</style>`;
const twoWidgets = (base) => `<!doctype html><html><head><meta charset="utf-8"><title>two</title>${hostile}
<script type="module" src="${base}embed.js"></script></head><body>
<div style="width: 680px"><attn-lab id="a" text="${TEXT0}" layer="3" head="4" loading="eager"></attn-lab></div>
<attn-lab id="b" layer="5" head="1" loading="eager" controls="none">${TEXT1}</attn-lab>
</body></html>`;
const posterOnly = (base) => `<!doctype html><html><head><meta charset="utf-8"><title>poster</title>
<script type="module" src="${base}embed.js"></script></head><body>
<attn-lab id="p" result-src="${base}figures/sentence-heads.json" layer="14" head="5"></attn-lab>
</body></html>`;

const whatIfWidget = (base) => `<!doctype html><html><head><meta charset="utf-8"><title>what-if</title>
<script type="module" src="${base}embed.js"></script></head><body>
<attn-lab id="w" text="${TEXT0}" layer="3" head="4" loading="eager" controls="none" scale="log" sink="hide" whatif="unmasked"></attn-lab>
</body></html>`;

const labWidget = (base) => `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>lab</title>
<script type="module" src="${base}embed.js"></script></head><body>
<attn-lab id="lab" view="lab" loading="eager"></attn-lab>
</body></html>`;
const srv = await serve(new URL('../../dist', import.meta.url).pathname, {
  pages: { '/test-two.html': twoWidgets('/'), '/test-poster.html': posterOnly('/'), '/test-whatif.html': whatIfWidget('/'), '/test-lab.html': labWidget('/') },
});
test.after(() => srv.close());

async function open(url, viewport = { width: 1100, height: 900 }) {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  return { browser, page, errors };
}

const stateOf = (page, id) => page.evaluate((id) => document.getElementById(id)?.dataset.state, id);
async function until(page, id, states, timeout = 240_000) {
  await page.waitForFunction(([id, states]) => states.includes(document.getElementById(id)?.dataset.state), [id, states], { timeout });
  return stateOf(page, id);
}
const exported = async (page, id) => JSON.parse(await page.evaluate((id) => document.getElementById(id).exportJson(), id));

function worstAgainstReference(result, layer, head) {
  const c = reference.cases.find((c) => c.text === result.text);
  assert.ok(c, `a reference case for ${JSON.stringify(result.text)}`);
  assert.deepEqual(result.ids, c.ids);
  assert.deepEqual(Object.keys(result.attention), [`${layer}.${head}`]);
  const rows = result.attention[`${layer}.${head}`];
  let worst = 0;
  c.attention[layer][head].forEach((row, i) => row.forEach((p, j) => { worst = Math.max(worst, Math.abs(rows[i][j] - p)); }));
  assert.ok(worst <= 5e-4, `attention differs by ${worst}`);
  return worst;
}

test('lesson page: eager widgets done with reference numbers, one model download, poster, U-curve, lazy, iframe, keyboard', async () => {
  const before = srv.count(MODEL);
  const { browser, page, errors } = await open(srv.url + 'lesson.html');
  try {
    // The lazy widget far below has not started.
    assert.equal(await stateOf(page, 'lazy-figure'), 'idle');
    for (const id of ['head-figure', 'model-figure', 'sink-figure']) assert.equal(await until(page, id, ['done', 'error']), 'done', id);
    assert.equal(await page.evaluate(() => document.getElementById('head-figure').dataset.backend), 'cpu');
    worstAgainstReference(await exported(page, 'head-figure'), 3, 4);
    // The model view and sink panel drew every head.
    assert.equal(await page.locator('#model-figure .thumb').count(), 270);
    assert.equal(await page.locator('#sink-figure .sink-cell').count(), 270);
    // The poster: static, drawn from the shipped JSON.
    assert.equal(await until(page, 'poster-figure', ['done', 'error']), 'done');
    assert.equal(await page.evaluate(() => document.getElementById('poster-figure').dataset.source), 'static');
    assert.match(await page.locator('#poster-figure .aw-static').textContent(), /static/);
    assert.deepEqual(Object.keys((await exported(page, 'poster-figure')).attention), ['14.5']);
    // The U-curve panel shows the shipped result at once: five positions, axes and legend.
    assert.equal(await until(page, 'position-figure', ['done', 'error']), 'done');
    assert.equal(await page.locator('#position-figure .u-curve circle').count(), 5);
    assert.match(await page.locator('#position-figure .shipped').textContent(), /A saved result for SmolLM2-135M-Instruct/);
    assert.doesNotMatch(await page.locator('#position-figure .shipped').textContent(), /attnlab position|--/);
    assert.match(await page.locator('#position-figure .u-curve').textContent(), /accuracy.*position of the answer/s);
    // Still idle: nothing far below the viewport started.
    assert.equal(await stateOf(page, 'lazy-figure'), 'idle');

    // Keyboard: focus the heatmap, arrows move the focus cell, the live region reads it.
    const canvas = page.locator('#head-figure canvas[role=img]');
    await canvas.focus();
    const first = await page.locator('#head-figure .live-cell').textContent();
    assert.match(first, /query 9 ‘.’ → key 0 ‘The’: 0\.\d+/);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowUp');
    const moved = await page.locator('#head-figure .live-cell').textContent();
    assert.match(moved, /^query 8 ‘ hungry’ → key 1 ‘ dog’: 0\.\d+$/);
    // A text alternative and a table of the numbers.
    assert.match(await canvas.getAttribute('aria-label'), /layer 3 head 4, 10 tokens.*Strongest links/);
    await page.locator('#head-figure .table-toggle').click();
    assert.equal(await page.locator('#head-figure table.numbers tbody tr').count(), 10);

    // The iframe: it runs, and embed-resize.js fits the frame to the height it posts.
    await page.locator('#frame-figure').scrollIntoViewIfNeeded();
    const frame = page.frameLocator('#frame-figure');
    await frame.locator('html[data-attnlab-state=done]').waitFor({ timeout: 240_000 });
    await page.waitForFunction(() => /^\d+px$/.test(document.getElementById('frame-figure').style.height), null, { timeout: 30_000 });
    const [styled, content] = await Promise.all([
      page.evaluate(() => parseFloat(document.getElementById('frame-figure').style.height)),
      frame.locator('body').evaluate((b) => Math.ceil(b.getBoundingClientRect().height)),
    ]);
    assert.ok(Math.abs(styled - content) <= 2 && content > 300, `frame ${styled}px, content ${content}px`);
    const inFrame = JSON.parse(await frame.locator('html').evaluate(() => window.attnlab.exportJson()));
    worstAgainstReference(inFrame, 3, 4);

    // Scrolled into view, the lazy widget starts and finishes.
    await page.locator('#lazy-figure').scrollIntoViewIfNeeded();
    assert.equal(await until(page, 'lazy-figure', ['done', 'error']), 'done');
    worstAgainstReference(await exported(page, 'lazy-figure'), 14, 5);

    // One model download for the whole page, its iframe included.
    assert.equal(srv.count(MODEL) - before, 1, 'the model crossed the network once');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('two widgets keep their own state and exports; hostile host CSS does not reach them', async () => {
  const { browser, page, errors } = await open(srv.url + 'test-two.html');
  try {
    assert.equal(await until(page, 'a', ['done', 'error']), 'done');
    assert.equal(await until(page, 'b', ['done', 'error']), 'done');
    worstAgainstReference(await exported(page, 'a'), 3, 4);
    worstAgainstReference(await exported(page, 'b'), 5, 1);
    // Visible, correctly sized canvases despite `canvas { display: none }` and huge fonts.
    for (const id of ['a', 'b']) {
      const box = await page.locator(`#${id} canvas[role=img]`).boundingBox();
      assert.ok(box && box.width > 300 && box.width <= 700 && box.height > 300, `${id}: ${JSON.stringify(box)}`);
      const font = await page.locator(`#${id} .aw-caption`).evaluate((e) => getComputedStyle(e).fontSize);
      assert.equal(font, '13px');
    }
    // Changing an attribute re-draws from the kept capture (no new run) and leaves the other alone.
    const events = page.evaluate(() => new Promise((resolve) => {
      const seen = [];
      document.getElementById('a').addEventListener('attnlab-statechange', (e) => { seen.push(e.detail.state); if (e.detail.state === 'done') resolve(seen); });
    }));
    await page.evaluate(() => document.getElementById('a').setAttribute('head', '7'));
    assert.deepEqual(await events, ['running', 'done']);
    worstAgainstReference(await exported(page, 'a'), 3, 7);
    worstAgainstReference(await exported(page, 'b'), 5, 1);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('narrow screens: a 320 px wide page shows the whole widget', async () => {
  const { browser, page, errors } = await open(srv.url + 'test-poster.html', { width: 320, height: 700 });
  try {
    assert.equal(await until(page, 'p', ['done', 'error']), 'done');
    const box = await page.locator('#p canvas[role=img]').boundingBox();
    assert.ok(box && box.width > 200 && box.x >= 0 && box.x + box.width <= 320, JSON.stringify(box));
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scroll <= 320, `page scrolls sideways: ${scroll}px`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a result-src poster draws with no model request', async () => {
  const before = srv.count(MODEL);
  const { browser, page, errors } = await open(srv.url + 'test-poster.html');
  try {
    assert.equal(await until(page, 'p', ['done', 'error']), 'done');
    assert.equal(await page.evaluate(() => document.getElementById('p').dataset.source), 'static');
    const drawn = await page.locator('#p canvas[role=img]').evaluate((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let coloured = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 2] > d[i] + 40) coloured++;
      return coloured;
    });
    assert.ok(drawn > 1000, `blue cells drawn: ${drawn} px`);
    assert.match(await page.locator('#p canvas[role=img]').getAttribute('aria-label'), /layer 14 head 5, 12 tokens/);
    await page.waitForTimeout(1500);
    assert.equal(srv.count(MODEL) - before, 0, 'no model download for a poster');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test("the Embed dialog's element snippet works pasted into a page of another origin", async () => {
  const { browser, page, errors } = await open(srv.url + `?text=${encodeURIComponent(TEXT0)}&layer=3&head=4`);
  let other;
  try {
    await page.click('button.embed-button');
    const snippet = await page.inputValue('.snippet-element');
    assert.match(snippet, /<script src="http:\/\/127\.0\.0\.1:\d+\/embed\.js" async><\/script>/);
    assert.match(await page.inputValue('.snippet-iframe'), /embed\.html\?text=.*loading="lazy".*title=|title=.*loading="lazy"/s);
    other = await serve(null, { pages: { '/': `<!doctype html><html><head><meta charset="utf-8"><title>course</title></head><body><h1>My course</h1>${snippet}</body></html>` }, cors: false });
    assert.notEqual(new URL(other.url).port, new URL(srv.url).port);
    const p2 = await browser.newPage();
    const errs2 = [];
    p2.on('pageerror', (e) => errs2.push(String(e)));
    await p2.goto(other.url);
    await p2.waitForFunction(() => ['done', 'error'].includes(document.querySelector('attn-lab')?.dataset.state), null, { timeout: 240_000 });
    const state = await p2.evaluate(() => document.querySelector('attn-lab').dataset.state);
    assert.equal(state, 'done', await p2.locator('attn-lab .aw-error').textContent().catch(() => ''));
    worstAgainstReference(JSON.parse(await p2.evaluate(() => document.querySelector('attn-lab').exportJson())), 3, 4);
    assert.deepEqual(errs2, []);
    assert.deepEqual(errors, []);
  } finally {
    other?.close();
    await browser.close();
  }
});

test('a widget with scale, sink and whatif attributes draws the view, exports the model', async () => {
  const { browser, page, errors } = await open(srv.url + 'test-whatif.html');
  try {
    assert.equal(await until(page, 'w', ['done', 'error']), 'done');
    // The map has no masked cells (what-if: no causal mask) and its legend names the view.
    const legend = await page.evaluate(() => document.getElementById('w').shadowRoot.querySelector('canvas[role=img]') !== null);
    assert.ok(legend);
    const result = await exported(page, 'w');
    worstAgainstReference(result, 3, 4); // exports stay the model's own numbers
    // Switching the what-if off by attribute redraws the causal map.
    await page.evaluate(() => document.getElementById('w').removeAttribute('whatif'));
    await until(page, 'w', ['done']);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('<attn-lab view="lab">: attention from scratch in a course page, no model downloaded', async () => {
  const modelRequests = srv.count(MODEL);
  const { browser, page, errors } = await open(srv.url + 'test-lab.html', { width: 375, height: 800 });
  try {
    assert.equal(await until(page, 'lab', ['done', 'error'], 60_000), 'done');
    // X, Q, K, V, then QKᵀ, ÷√d, mask, softmax, ·V: nine matrices, each row of the softmax sums to 1.
    assert.equal(await page.locator('#lab .mat-row').first().locator('.mat').count(), 4);
    const softmaxRows = async () => page.evaluate(() => {
      const fig = [...document.getElementById('lab').shadowRoot.querySelectorAll('.mat')].find((f) => f.querySelector('figcaption')?.textContent.includes('each row sums to 1'));
      return [...fig.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => Number(td.textContent)));
    });
    const before = await softmaxRows();
    assert.equal(before.length, 5);
    for (const row of before) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 0.03, `a softmax row sums to ${row}`);
    // Causal: nothing above the diagonal.
    before.forEach((row, i) => row.slice(i + 1).forEach((v) => assert.equal(v, 0)));
    // The buggy mask (0 instead of −∞) leaks weight onto later words, and says so.
    await page.selectOption('#lab select[aria-label=mask]', 'zero');
    const leaked = await softmaxRows();
    assert.ok(leaked[0].slice(1).some((v) => v > 0), 'the first word now reads later ones');
    assert.match(await page.locator('#lab .notice').textContent(), /e⁰ = 1/);
    // A new word changes the numbers at once.
    await page.selectOption('#lab select[aria-label="word 2"]', { index: 7 });
    assert.notDeepEqual(await softmaxRows(), leaked);
    // No model for this view: nothing but the site's scripts was fetched.
    assert.equal(srv.count(MODEL), modelRequests, 'the model file was not requested');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scroll at 375 px');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
