// Page and widget are one app (issue 23): for the same settings the playground and an
// `<attn-lab>` on another origin draw the same figure — the head map's canvas pixel for pixel
// (cells, labels, the query's outline), one query's row step by step, every head's pattern
// score with its colour, and the toy lab's matrices cell by cell. Debian's Chromium, headless,
// CPU path (WebGPU off), light colour scheme, the same device pixel ratio.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const explain = JSON.parse(fs.readFileSync(new URL('../data/explain.json', import.meta.url))).cases[0];
const { text, layer, head } = explain;
const site = await serve(new URL('../../dist', import.meta.url).pathname);
const widgets = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<link rel="icon" href="data:,"><title>course</title><script type="module" src="${site.url}embed.js"></script></head><body>
<attn-lab id="head" view="head" text="${text}" layer="${layer}" head="${head}" controls="none" loading="eager"></attn-lab>
<attn-lab id="inside" view="inside" text="${text}" layer="${layer}" head="${head}" controls="none" loading="eager"></attn-lab>
<attn-lab id="patterns" view="patterns" text="${text}" controls="none" loading="eager"></attn-lab>
<attn-lab id="lab" view="lab"></attn-lab>
</body></html>`;
const host = await serve(null, { pages: { '/lesson.html': widgets } });
test.after(() => {
  site.close();
  host.close();
});

// A canvas's pixels: its size and a digest, and the pixels themselves to count differences.
const pixels = (locator) => locator.evaluate((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 2166136261;
  for (let i = 0; i < d.length; i++) h = Math.imul(h ^ d[i], 16777619);
  return { w: c.width, h: c.height, digest: h >>> 0, data: Array.from(d) };
});
const differing = (a, b) => {
  let n = 0;
  for (let i = 0; i < a.length; i += 4) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2] || a[i + 3] !== b[i + 3]) n++;
  return n;
};
async function samePixels(a, b, what) {
  const [pa, pb] = [await pixels(a), await pixels(b)];
  assert.deepEqual([pa.w, pa.h], [pb.w, pb.h], `${what}: canvas sizes`);
  assert.ok(pa.w > 100 && pa.data.some((v, i) => i % 4 === 2 && v > 0 && v !== pa.data[i - 1]), `${what}: something coloured is drawn`);
  assert.equal(differing(pa.data, pb.data), 0, `${what}: pixels that differ`);
  assert.equal(pa.digest, pb.digest);
}
// Each cell of a table-like figure as (text, inline style, title).
const cells = (locator) => locator.evaluateAll((els) => els.map((e) => [e.textContent.trim(), e.getAttribute('style') ?? '', e.getAttribute('title') ?? '']));

test('the playground and a widget with the same settings draw the same head map, steps, patterns and lab', async () => {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const errors = [];
  try {
    const open = async (url) => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, colorScheme: 'light' });
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url);
      return page;
    };
    const playground = await open(`${site.url}?backend=cpu&text=${encodeURIComponent(text)}&layer=${layer}&head=${head}`);
    const lesson = await open(`${host.url}lesson.html`);
    await playground.waitForFunction(() => ['done', 'error'].includes(document.documentElement.dataset.attnlabState), null, { timeout: 300_000 });
    assert.equal(await playground.evaluate(() => document.documentElement.dataset.attnlabState), 'done');
    for (const id of ['head', 'inside', 'patterns', 'lab']) {
      await lesson.waitForFunction((id) => ['done', 'error'].includes(document.getElementById(id)?.dataset.state), id, { timeout: 300_000 });
      assert.equal(await lesson.evaluate((id) => document.getElementById(id).dataset.state, id), 'done', id);
    }

    // The head map (and the same map beside the steps of "inside this head").
    const map = playground.locator('.panel:not(.hidden) .head-map-scroll canvas[role=img]');
    await samePixels(map, lesson.locator('#head canvas[role=img]'), 'head');
    await samePixels(map, lesson.locator('#inside canvas[role=img]'), 'inside map');

    // One query's row step by step: every number and bar of the table.
    await playground.waitForSelector('.steps-table tbody tr');
    await lesson.waitForSelector('#inside .steps-table tbody tr');
    const steps = await cells(playground.locator('.steps-table td'));
    assert.ok(steps.length >= 5 * explain.probs.length, `${steps.length} cells`);
    assert.deepEqual(await cells(lesson.locator('#inside .steps-table td')), steps);

    // Every head's pattern score and colour.
    await playground.getByRole('tab', { name: 'Head patterns', exact: true }).click();
    await playground.waitForSelector('.pattern-grid .pattern-cell');
    await lesson.waitForSelector('#patterns .pattern-grid .pattern-cell');
    const grid = await cells(playground.locator('.pattern-grid .pattern-cell'));
    assert.equal(grid.length, 270);
    assert.deepEqual(await cells(lesson.locator('#patterns .pattern-grid .pattern-cell')), grid);

    // The toy lab: every matrix, value and colour.
    await playground.getByRole('tab', { name: 'From scratch', exact: true }).click();
    const lab = await cells(playground.locator('.minilab .mat:not(.weights) td'));
    assert.ok(lab.length >= 100, `${lab.length} lab cells`);
    assert.deepEqual(await cells(lesson.locator('#lab .minilab .mat:not(.weights) td')), lab);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
