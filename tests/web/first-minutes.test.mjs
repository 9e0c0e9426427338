// The first five minutes of a new reader or course author (issue 21), in Debian's Chromium on
// the CPU worker: the playground opened with no parameters runs and draws; every tab shows
// something before its own run; phones (375 px) do not scroll sideways and can pick heads
// without a shift key; dark mode is dark and its chart text readable; the Embed dialog's
// snippet draws what the playground showed; unknown views and blocked cross-origin loads say
// why; "find the head" ranks every head by attention from one token to another.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const reference = JSON.parse(fs.readFileSync(new URL('../data/forward.json', import.meta.url)));
const TEXT0 = reference.cases[0].text;
const srv = await serve(new URL('../../dist', import.meta.url).pathname);
test.after(() => srv.close());

async function open(query, { viewport = { width: 1280, height: 1000 }, colorScheme = 'light' } = {}) {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const page = await browser.newPage({ viewport, colorScheme });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { errors.push('dialog: ' + d.message()); d.dismiss(); });
  await page.goto(srv.url + query);
  return { browser, page, errors };
}
const state = (page) => page.evaluate(() => document.documentElement.dataset.attnlabState);
async function until(page, states, timeout = 240_000) {
  await page.waitForFunction((s) => s.includes(document.documentElement.dataset.attnlabState), states, { timeout });
  return state(page);
}
const tab = (page, name) => page.getByRole('tab', { name, exact: true }).click();
// Pixels of the visible heatmap that are clearly coloured (blue cells).
const blueCells = (page, sel = '.panel:not(.hidden) canvas[role=img]') => page.locator(sel).first().evaluate((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 2] > d[i] + 40) n++;
  return n;
});

test('opened with no parameters the playground runs the example and every tab shows something before its own run', async () => {
  const { browser, page, errors } = await open('');
  try {
    assert.equal(await until(page, ['done', 'error']), 'done');
    assert.ok(await blueCells(page) > 1000, 'the head map is drawn');
    const text = await page.inputValue('#attnlab-text');
    assert.ok(text.length > 0);
    // All heads, the sink chart (with axes, legend and column headers), lost in the middle
    // (the shipped curve), head patterns, from scratch, and the cost tab's first words.
    await tab(page, 'All heads');
    await page.waitForSelector('.thumb canvas', { timeout: 60_000 });
    await tab(page, 'Attention sink');
    assert.equal(await page.locator('.sink-cell').count(), 270);
    const chart = await page.locator('.sink-chart[aria-label^="Line chart: share of attention"]').textContent();
    assert.match(chart, /attention on token 0/);
    assert.match(chart, /mean over the heads of each layer/);
    assert.match(chart, /even spread over the earlier tokens: 0\.\d{3}/);
    assert.doesNotMatch(chart, /even spread over the earlier tokens: 0\.000/);
    for (const l of ['0', '10', '28']) assert.ok((await page.locator('.sink-chart[aria-label^="Line chart: share of attention"] text', { hasText: new RegExp(`^${l}$`) }).count()) >= 1, `layer tick ${l}`);
    assert.equal(await page.locator('.sink-head-row .sink-col').count(), 9);
    assert.equal(await page.locator('.sink-legend .ramp').count(), 1);
    await tab(page, 'Lost in the middle');
    assert.ok(await page.locator('.u-curve circle').count() >= 5);
    await tab(page, 'Head patterns');
    await page.waitForSelector('.pattern-cell', { timeout: 60_000 });
    await tab(page, 'Cost of attention');
    assert.match(await page.locator('.cost-first').textContent(), /Press Measure/);
    assert.equal(await page.locator('.cost-plots').isVisible(), false, 'no empty plot boxes');
    assert.match(await page.locator('.flop-split').textContent(), /GFLOP/);
    await tab(page, 'From scratch');
    assert.ok(await page.locator('.mat table').count() >= 4);
    // "The same steps on the real model" opens a head view that is done and drawn.
    await page.click('button.to-real-model');
    assert.equal(await until(page, ['done', 'error']), 'done');
    assert.equal(await page.locator('nav.tabs button.active').textContent(), 'Head');
    assert.ok(await blueCells(page) > 1000);
    // The badge speaks plainly; the details are on hover.
    assert.equal(await page.textContent('.badge'), 'Running on your CPU (fast WebAssembly)');
    assert.match(await page.getAttribute('.badge', 'title'), /WebAssembly SIMD128/);
    // The model is named as readers know it, in the cost tab too.
    await tab(page, 'Cost of attention');
    assert.match(await page.locator('.cost').textContent(), /SmolLM2-135M-Instruct/);
    assert.doesNotMatch(await page.locator('.cost').textContent(), /Lc100K/);
    // A layer typed out of range is corrected in the box.
    await tab(page, 'Head');
    await page.fill('input[name=layer]', '-1');
    await page.dispatchEvent('input[name=layer]', 'change');
    assert.equal(await page.inputValue('input[name=layer]'), '0');
    await page.fill('input[name=layer]', '99');
    await page.dispatchEvent('input[name=layer]', 'change');
    assert.equal(await page.inputValue('input[name=layer]'), '29');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('run=0 rests in ready; the state is documented', async () => {
  const { browser, page, errors } = await open('?run=0');
  try {
    assert.equal(await until(page, ['ready', 'done', 'error']), 'ready');
    await page.waitForTimeout(1000);
    assert.equal(await state(page), 'ready');
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    assert.match(readme, /`ready`/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a 375 px phone: no sideways scroll on any tab, tabs in one row, heads picked by tapping', async () => {
  const { browser, page, errors } = await open(`?text=${encodeURIComponent(TEXT0)}`, { viewport: { width: 375, height: 800 } });
  try {
    assert.equal(await until(page, ['done', 'error']), 'done');
    const tabs = await page.locator('nav.tabs button').evaluateAll((bs) => bs.map((b) => b.getBoundingClientRect().height));
    assert.ok(Math.max(...tabs) < 48, `tab labels on one line: ${tabs}`);
    for (const name of ['Head', 'All heads', 'Attention sink', 'Lost in the middle', 'Head patterns', 'Layer by layer', 'Cost of attention', 'From scratch']) {
      await tab(page, name);
      await page.waitForTimeout(300);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 375, `${name}: the page is ${width}px wide`);
    }
    // Knock-out without a modifier key: turn on "Pick heads", tap a thumbnail.
    await tab(page, 'All heads');
    await page.waitForSelector('.thumb canvas', { timeout: 60_000 });
    await page.locator('.pick-bar .pick-mode input').check();
    await page.locator('.thumb').nth(10).click();
    assert.equal(await page.locator('.thumb.picked').count(), 1);
    assert.match(await page.locator('.pick-bar').textContent(), /Picked for a knock-out: 1\.1/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

// WCAG contrast of two sRGB colours.
function contrast(a, b) {
  const lum = ([r, g, bl]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(bl);
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}
const rgb = (s) => s.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);

test('dark mode: the playground follows the reader and its chart text and masked cells stay legible; the toggle keeps light', async () => {
  const { browser, page, errors } = await open(`?text=${encodeURIComponent(TEXT0)}&layer=3&head=4`, { colorScheme: 'dark' });
  try {
    assert.equal(await until(page, ['done', 'error']), 'done');
    const bg = rgb(await page.evaluate(() => getComputedStyle(document.body).backgroundColor === 'rgba(0, 0, 0, 0)' ? getComputedStyle(document.documentElement).backgroundColor : getComputedStyle(document.body).backgroundColor));
    assert.ok(bg.every((c) => c < 60), `dark background: ${bg}`);
    // The heatmap canvas: its paper is dark, its label text contrasts ≥ 4.5 with it (sampled
    // pixels of the "query ↓ key →" caption), and the masked cells are not bright.
    const px = await page.locator('.panel:not(.hidden) canvas[role=img]').evaluate((c) => {
      const ctx = c.getContext('2d');
      const s = c.width / 650; // the canvas is 650 CSS px wide at device scale s
      const paper = Array.from(ctx.getImageData(2, c.height - 2, 1, 1).data.slice(0, 3));
      const caption = ctx.getImageData(0, 0, Math.round(120 * s), Math.round(20 * s)).data;
      let best = null, far = -1;
      for (let i = 0; i < caption.length; i += 4) {
        const d = Math.abs(caption[i] - paper[0]) + Math.abs(caption[i + 1] - paper[1]) + Math.abs(caption[i + 2] - paper[2]);
        if (d > far) { far = d; best = [caption[i], caption[i + 1], caption[i + 2]]; }
      }
      // A masked cell: top-right of the map (query 0 cannot see key 9).
      const masked = Array.from(ctx.getImageData(Math.round((90 + 550) * s), Math.round((90 + 10) * s), 1, 1).data.slice(0, 3));
      return { paper, ink: best, masked };
    });
    assert.ok(px.paper.every((c) => c < 60), `dark paper: ${px.paper}`);
    assert.ok(contrast(px.ink, px.paper) >= 4.5, `canvas text contrast ${contrast(px.ink, px.paper).toFixed(2)}`);
    assert.ok(px.masked.every((c) => c < 90), `masked cells dark: ${px.masked}`);
    // The sink chart's SVG text against the page.
    await tab(page, 'Attention sink');
    const fill = rgb(await page.locator('.sink-chart[aria-label^="Line chart: share of attention"] text').first().evaluate((t) => getComputedStyle(t).fill));
    assert.ok(contrast(fill, bg) >= 4.5, `sink chart text contrast ${contrast(fill, bg).toFixed(2)}`);
    // The toggle: Auto → Dark → Light; light is light and kept across a reload.
    await page.click('button.theme-toggle');
    await page.click('button.theme-toggle');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light');
    await page.reload();
    await until(page, ['done', 'error']);
    const light = rgb(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor));
    assert.ok(light.every((c) => c > 200), `light background: ${light}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('find the head: it → trophy, every head ranked, the top equals the maximum of the exported rows; the query is kept in the URL', async () => {
  const text = "The trophy didn't fit in the suitcase because it was too big.";
  const { browser, page, errors } = await open(`?text=${encodeURIComponent(text)}`);
  try {
    assert.equal(await until(page, ['done', 'error']), 'done');
    const tokens = await page.locator('.tokens .token').allTextContents();
    const it = tokens.indexOf(' it');
    const trophy = tokens.indexOf(' trophy');
    assert.ok(it > trophy && trophy > 0, JSON.stringify(tokens));
    await page.locator('.tokens .token').nth(it).click();
    await page.waitForFunction((q) => new URLSearchParams(location.search).get('q') === String(q), it);
    await tab(page, 'All heads');
    await page.locator('.find-key').selectOption(String(trophy));
    await page.waitForSelector('.find-ranked li');
    const exported = JSON.parse(await page.evaluate(() => window.attnlab.exportQueryRows()));
    assert.equal(exported.query, it);
    const heads = Object.entries(exported.rows);
    assert.equal(heads.length, 270);
    const [bestHead, bestRow] = heads.reduce((a, b) => (b[1][trophy] > a[1][trophy] ? b : a));
    const top = await page.locator('.find-ranked li').first().textContent();
    const [l, h] = bestHead.split('.');
    assert.match(top, new RegExp(`layer ${l} · head ${h}`));
    assert.equal(Number(top.match(/(\d\.\d{3})\s*$/)[1]), Number(bestRow[trophy].toFixed(3)));
    // Bars instead of maps: the query's row per head.
    await page.locator('input.row-bars').check();
    assert.match(await page.locator('.thumb').first().getAttribute('title'), /to the chosen key/);
    // The top head opened: its exact row (the model's numbers) holds the same value.
    await page.locator('.find-ranked li button').first().click();
    await until(page, ['done', 'error']);
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.ok(Math.abs(result.attention[bestHead][it][trophy] - bestRow[trophy]) < 1e-6);
    // The query and key stay in the link and come back with it.
    const url = page.url();
    assert.match(url, new RegExp(`[?&]q=${it}(&|$)`));
    assert.match(url, new RegExp(`[?&]k=${trophy}(&|$)`));
    await page.goto(url);
    await until(page, ['done', 'error']);
    assert.equal(await page.locator('.tokens .token.selected').textContent(), ' it');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the Embed dialog carries query, scale, sink and what-if; pasted into another origin it exports the same rows and draws the same pixels', async () => {
  const { browser, page, errors } = await open(`?text=${encodeURIComponent(TEXT0)}&layer=3&head=4&q=6&scale=log&sink=hide&whatif=unscaled&palette=viridis`);
  let other;
  try {
    assert.equal(await until(page, ['done', 'error']), 'done');
    await page.click('button.embed-button');
    const snippet = await page.inputValue('.snippet-element');
    assert.match(snippet, /<script src="http:\/\/127\.0\.0\.1:\d+\/embed\.js" async><\/script>/);
    for (const a of ['query="6"', 'scale="log"', 'palette="viridis"', 'sink="hide"', 'whatif="unscaled"', 'layer="3"', 'head="4"', 'view="head"']) assert.ok(snippet.includes(a), `${a} in ${snippet}`);
    assert.match(await page.inputValue('.snippet-iframe'), /query=6.*scale=log.*sink=hide.*whatif=unscaled/);
    const mine = await page.locator('.panel:not(.hidden) canvas[role=img]').evaluate((c) => ({ w: c.width, h: c.height, data: Array.from(c.getContext('2d').getImageData(90 * c.width / 650, 90 * c.width / 650, 560 * c.width / 650, 560 * c.width / 650).data) }));
    const rows = JSON.parse(await page.evaluate(() => window.attnlab.exportJson())).attention['3.4'];
    // The colour-blind-safe palette: the map has viridis greens, not only blues.
    let green = 0;
    for (let i = 0; i < mine.data.length; i += 4) if (mine.data[i + 1] > mine.data[i + 2] + 30 && mine.data[i + 1] > mine.data[i] + 30) green++;
    assert.ok(green > 1000, `viridis cells: ${green} px`);
    other = await serve(null, { pages: { '/': `<!doctype html><html><head><meta charset="utf-8"><title>course</title></head><body style="margin:0">${snippet.replace('controls="compact"', 'controls="none" loading="eager"')}</body></html>` }, cors: false });
    const p2 = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    await p2.goto(other.url);
    await p2.waitForFunction(() => ['done', 'error'].includes(document.querySelector('attn-lab')?.dataset.state), null, { timeout: 240_000 });
    assert.equal(await p2.evaluate(() => document.querySelector('attn-lab').dataset.state), 'done');
    const theirs = JSON.parse(await p2.evaluate(() => document.querySelector('attn-lab').exportJson()));
    assert.deepEqual(theirs.attention['3.4'], rows);
    const drawn = await p2.locator('attn-lab canvas[role=img]').evaluate((c) => ({ w: c.width, h: c.height, data: Array.from(c.getContext('2d').getImageData(90 * c.width / 650, 90 * c.width / 650, 560 * c.width / 650, 560 * c.width / 650).data) }));
    assert.deepEqual([drawn.w, drawn.h], [mine.w, mine.h]);
    let differ = 0;
    for (let i = 0; i < mine.data.length; i += 4) if (Math.abs(mine.data[i] - drawn.data[i]) + Math.abs(mine.data[i + 1] - drawn.data[i + 1]) + Math.abs(mine.data[i + 2] - drawn.data[i + 2]) > 6) differ++;
    assert.ok(differ / (mine.data.length / 4) < 0.002, `${differ} map pixels differ`);
    // Parts: the ticked ones become `panels`, in both snippets and the preview.
    await page.check('.embed-parts input[value=map]');
    await page.check('.embed-parts input[value=tokens]');
    assert.match(await page.inputValue('.snippet-element'), /panels="map,tokens"/);
    assert.match(await page.inputValue('.snippet-iframe'), /panels=map%2Ctokens/);
    assert.match(await page.getAttribute('.embed-preview', 'src'), /panels=map%2Ctokens/);
    await page.uncheck('.embed-parts input[value=map]');
    await page.uncheck('.embed-parts input[value=tokens]');
    assert.doesNotMatch(await page.inputValue('.snippet-element'), /panels=/);
    // Every tab embeds as its own view (head patterns too, with nothing said against it).
    await page.keyboard.press('Escape');
    await tab(page, 'Head patterns');
    await page.click('button.embed-button');
    assert.match(await page.inputValue('.snippet-element'), /view="patterns"/);
    assert.equal(await page.locator('.embed-unsupported').count(), 0);
    assert.deepEqual(errors, []);
  } finally {
    other?.close();
    await browser.close();
  }
});

test('an unknown view and a host that blocks cross-origin loads say why in the widget box', async () => {
  const blocked = await serve(new URL('../../dist', import.meta.url).pathname, { cors: false });
  const page1 = `<!doctype html><html><head><meta charset="utf-8"><script src="${srv.url}embed.js"></script></head><body>
<attn-lab id="bogus" view="bogus" text="x" loading="eager"></attn-lab></body></html>`;
  const page2 = `<!doctype html><html><head><meta charset="utf-8"><script src="${blocked.url}embed.js"></script></head><body>
<attn-lab id="cors" text="x" loading="eager"></attn-lab></body></html>`;
  const host = await serve(null, { pages: { '/bogus.html': page1, '/cors.html': page2 } });
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  try {
    const page = await browser.newPage();
    await page.goto(host.url + 'bogus.html');
    await page.waitForFunction(() => document.getElementById('bogus').dataset.state === 'error', null, { timeout: 60_000 });
    assert.match(await page.locator('#bogus .aw-error').textContent(), /view=bogus is not one of head, model, sinks, position, tokens/);
    assert.equal(await page.locator('#bogus canvas[role=img]').isVisible(), false, 'no head map in its place');
    await page.goto(host.url + 'cors.html');
    await page.waitForFunction(() => document.getElementById('cors').dataset.state === 'error', null, { timeout: 60_000 });
    const why = await page.locator('#cors .attnlab-error').textContent();
    assert.match(why, new RegExp(`could not load from 127\\.0\\.0\\.1:${new URL(blocked.url).port}: .*Access-Control-Allow-Origin`));
  } finally {
    await browser.close();
    host.close();
    blocked.close();
  }
});
