// The views drawn from the playground's own state (inside one head, head patterns, how alike
// the heads are, knock-out, cost) as `<attn-lab>` widgets on a course page of another origin,
// with the site in a subfolder: each reaches `done` with transformers' numbers, names its view
// on its dataset, and asks the worker for nothing twice (the messages the page posts to the
// worker are counted). Debian's Chromium, headless, CPU path (WebGPU off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { reference } from './reference.mjs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';

const data = (f) => JSON.parse(fs.readFileSync(new URL(`../data/${f}`, import.meta.url))).cases[0];
const explain = data('explain.json');
const heads = data('heads.json');
const ablate = data('ablate.json');
const PREFIX = '/course/attnlab/';
const MODEL = `${PREFIX}models/SmolLM2-135M-Instruct.Q4_1.gguf`;

const site = await serve(new URL('../../dist', import.meta.url).pathname, { prefix: PREFIX });
const course = (base) => `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<link rel="icon" href="data:,"><title>course</title><script type="module" src="${base}embed.js"></script></head><body>
<h1>A lesson on another origin</h1>
<attn-lab id="inside" view="inside" text="${explain.text}" layer="${explain.layer}" head="${explain.head}" whatif="unscaled" panels="map,tokens,table,title" loading="eager"></attn-lab>
<attn-lab id="patterns" view="patterns" text="${heads.text}" loading="eager" controls="none"></attn-lab>
<attn-lab id="similarity" view="similarity" text="${reference.cases[0].text}" loading="eager"></attn-lab>
<attn-lab id="knockout" view="knockout" text="${ablate.text}" ablate="${ablate.heads.join(',')}" loading="eager"></attn-lab>
<attn-lab id="cost" view="cost" panels="caption,nonsense" loading="eager"></attn-lab>
</body></html>`;
const host = await serve(null, { pages: { '/lesson.html': course(site.url) } });
test.after(() => {
  site.close();
  host.close();
});

// Every message the page posts to a worker, as {type, slot, view}.
const COUNT_MESSAGES = () => {
  window.__posted = [];
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (m, t) {
    const v = m && m.value;
    if (v && v.type) window.__posted.push({ type: v.type, slot: v.slot, text: v.text, view: v.view ? JSON.stringify(v.view) : undefined });
    return t === undefined ? post.call(this, m) : post.call(this, m, t);
  };
};

// A fresh headless Chromium (CPU path) with one page; its script errors and dialogs are kept.
async function browse(viewport = { width: 1000, height: 900 }) {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { errors.push('dialog: ' + d.message()); d.dismiss(); });
  return { browser, page, errors };
}

// On a 360 px phone the page is no wider than the screen.
async function noSidewaysScroll(page) {
  await page.setViewportSize({ width: 360, height: 800 });
  await page.waitForTimeout(300);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 361, `page ${wide} px wide at 360 px`);
}

const until = (page, id) => page.waitForFunction((id) => ['done', 'error'].includes(document.getElementById(id)?.dataset.state), id, { timeout: 300_000 }).then(() => page.evaluate((id) => document.getElementById(id).dataset.state, id));

test('inside, patterns, similarity, knock-out and cost embed on another origin with the reference numbers', async () => {
  const before = site.count(MODEL);
  const { browser, page, errors } = await browse({ width: 1100, height: 900 });
  try {
    await page.addInitScript(COUNT_MESSAGES);
    const missed = site.notFound().length;
    await page.goto(host.url + 'lesson.html');
    for (const id of ['inside', 'patterns', 'similarity', 'knockout', 'cost']) {
      assert.equal(await until(page, id), 'done', `${id}: ${await page.locator(`#${id} .aw-error`).allTextContents()}`);
      assert.equal(await page.evaluate((id) => document.getElementById(id).dataset.view, id), id);
    }
    assert.equal(site.count(MODEL) - before, 1, 'one model download for every widget');
    assert.deepEqual(site.notFound().slice(missed), []);

    // Inside one head: the last query's row, step by step, is transformers' (softmax column);
    // the what-if came with the run's own map (no second map asked for) and shows beside it.
    await page.waitForSelector('#inside .steps-table tbody tr');
    const probs = await page.$$eval('#inside .steps-table tbody tr td:nth-child(5) .num', (c) => c.map((x) => Number(x.textContent)));
    assert.equal(probs.length, explain.probs.length);
    probs.forEach((p, j) => assert.ok(Math.abs(p - explain.probs[j]) < 1e-4, `key ${j}: ${p} vs ${explain.probs[j]}`));
    assert.match(await page.locator('#inside .whatif-summary').textContent(), /Without ÷√d: entropy/);
    const posted = await page.evaluate(() => window.__posted);
    const run = posted.find((m) => m.type === 'run' && m.text === explain.text);
    assert.ok(run && /nscaled/.test(run.view), `the run asks for the what-if map: ${JSON.stringify(run)}`);
    const ofInside = (type) => posted.filter((m) => m.type === type && m.slot === run.slot).length;
    assert.equal(ofInside('run'), 1);
    assert.equal(ofInside('head'), 0, 'no second map for the what-if');
    assert.equal(ofInside('explain'), 1, 'one explain request for the run');
    // Another token: its row explained (and announced with its numbers), once.
    const selected = page.evaluate(() => new Promise((resolve) => document.getElementById('inside').addEventListener('attnlab-select', (e) => resolve({ ...e.detail, row: e.detail.row && [...e.detail.row] }), { once: true })));
    await page.click('#inside .tokens button >> nth=4');
    await page.waitForFunction(() => document.getElementById('inside').shadowRoot.querySelectorAll('.steps-table tbody tr').length === 5);
    const sel = await selected;
    assert.equal(sel.query, 4);
    assert.deepEqual([sel.layer, sel.head], [explain.layer, explain.head]);
    const row = await page.$$eval('#inside .steps-table tbody tr td:nth-child(5) .num', (c) => c.map((x) => Number(x.textContent)));
    assert.equal(sel.row.length, 5);
    sel.row.forEach((p, j) => assert.ok(Math.abs(p - row[j]) < 1e-4, `event row ${j}: ${p} vs table ${row[j]}`));
    assert.equal((await page.evaluate(() => window.__posted)).filter((m) => m.type === 'explain' && m.slot === run.slot).length, 2);
    // `panels` kept the map, tokens, table and title: the what-if buttons and the narrated steps are hidden.
    for (const sel of ['canvas[role=img]', '.tokens', '.steps-table', '.aw-bar']) assert.equal(await page.locator(`#inside ${sel}`).first().isVisible(), true, sel);
    for (const sel of ['.look-controls', 'ol.steps', '.aw-caption', '.aw-foot']) assert.equal(await page.locator(`#inside ${sel}`).first().isVisible(), false, sel);

    // Head patterns: every head scored with transformers' numbers.
    await page.waitForSelector('#patterns .pattern-grid .pattern-cell');
    assert.equal(await page.locator('#patterns .pattern-cell').count(), 270);
    const title = await page.getAttribute('#patterns .pattern-grid tbody tr:nth-child(19) td:nth-child(10) button', 'title');
    assert.ok(Math.abs(Number(title.split(' ').pop()) - heads.first_token[18][8]) < 1e-3, title);

    // How alike the heads are: asked for without a button, clustered.
    await page.waitForSelector('#similarity .alike-summary', { timeout: 120_000 });
    assert.match(await page.locator('#similarity .alike-summary').textContent(), /of the 270 heads fall into \d+ groups?/);

    // Knock-out from the `ablate` attribute: the next-token distribution moves as transformers says.
    await page.waitForSelector('#knockout .next-compare', { timeout: 120_000 });
    const kl = Number((await page.locator('#knockout .next-compare caption').textContent()).match(/= ([0-9.]+) nats/)[1]);
    assert.ok(Math.abs(kl - ablate.kl_last) < 1e-3 && kl > 0, `KL ${kl} vs transformers ${ablate.kl_last}`);
    const deltas = await page.$$eval('#knockout .delta-strip .token', (t) => t.map((x) => Number(x.title.match(/Δ ([-+0-9.]+)/)?.[1])));
    ablate.delta_logprob.forEach((d, i) => assert.ok(Math.abs(deltas[i + 1] - d) < 2e-3, `token ${i + 1}: Δ ${deltas[i + 1]} vs ${d}`));

    // Cost: the model's own arithmetic and the KV-cache calculator, the sweep ready to start.
    assert.ok(await page.locator('#cost .flop-split tr').count() >= 3);
    assert.ok(await page.locator('#cost .kv-table tr').count() >= 2);
    assert.equal(await page.locator('#cost button.run-cost').isEnabled(), true);
    // A part the view does not have is named, with the parts it has.
    assert.match(await page.locator('#cost .aw-notice').first().textContent(), /panels: ‘nonsense’ not a part of the cost view \(its parts: title, caption, exports\)/);
    assert.equal(await page.locator('#cost .aw-caption').isVisible(), true);
    assert.equal(await page.locator('#cost .aw-foot').isVisible(), false);

    // A phone: no widget makes the course page scroll sideways.
    await noSidewaysScroll(page);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('every view reaches done in a course page on another origin (the site in a subfolder) and names itself', async () => {
  const views = ['head', 'model', 'sinks', 'position', 'tokens', 'generate', 'lens', 'lab', 'inside', 'patterns', 'similarity', 'knockout', 'cost', 'streaming', 'vectors', 'qk', 'compare'];
  const text = 'The cat sat on the mat because it was warm.';
  const figures = views.map((v) => `<attn-lab id="v-${v}" view="${v}" text="${text}" layer="3" head="4" gen="3" temperature="0" loading="eager"></attn-lab>`).join('\n');
  const every = await serve(null, { pages: { '/every.html': `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="${site.url}embed.js"></script></head><body>${figures}</body></html>` } });
  const before = site.count(MODEL);
  const { browser, page, errors } = await browse();
  try {
    await page.goto(every.url + 'every.html');
    for (const v of views) {
      assert.equal(await until(page, `v-${v}`), 'done', `${v}: ${await page.locator(`#v-${v} .aw-error`).allTextContents()}`);
      assert.equal(await page.evaluate((v) => document.getElementById(`v-${v}`).dataset.view, v), v);
    }
    assert.equal(site.count(MODEL) - before, 1, 'one model download for the seventeen figures');
    // What each view is done with is on screen.
    assert.equal(await page.locator('#v-model .thumb').count(), 270);
    assert.equal(await page.locator('#v-sinks .sink-cell').count(), 270);
    assert.ok(await page.locator('#v-lens .lens-cell').count() > 100);
    assert.equal(await page.locator('#v-generate .gen-token').count(), 3);
    assert.equal(await page.evaluate(() => document.getElementById('v-position').dataset.source), 'static');
    // Why sinks matter: the saved run of the four caches, its Run buttons ready once the model is.
    await page.waitForSelector('#v-streaming .streaming-chart polyline');
    assert.equal(await page.locator('#v-streaming .streaming-chart polyline').count(), 4);
    assert.equal(await page.locator('#v-streaming button.run-streaming').isEnabled(), true);
    // A word through the layers (the default pair) and the head's queries and keys.
    assert.equal(await page.locator('#v-vectors .cos-point').count(), 31);
    assert.equal(await page.locator('#v-qk .qk-key').count(), 11);
    assert.equal(await page.locator('#v-compare .compare-maps canvas').count(), 2);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    every.close();
  }
});

test('el.state restores the same view on another element; hostile states stay inert and say what was dropped', async () => {
  const { browser, page, errors } = await browse();
  try {
    await page.goto(host.url + 'lesson.html');
    assert.equal(await until(page, 'inside'), 'done');
    // The reader picks a token: the state says so.
    await page.click('#inside .tokens button >> nth=4');
    await page.waitForFunction(() => document.getElementById('inside').shadowRoot.querySelectorAll('.steps-table tbody tr').length === 5);
    const state = await page.evaluate(() => document.getElementById('inside').state);
    assert.deepEqual(
      { view: state.view, text: state.text, layer: state.layer, head: state.head, query: state.query, whatif: state.whatif },
      { view: 'inside', text: explain.text, layer: explain.layer, head: explain.head, query: 4, whatif: 'unscaled' },
    );
    // A new element given that state (before it is on the page: the `state` attribute) ...
    await page.evaluate((s) => {
      const b = document.createElement('attn-lab');
      b.id = 'copy';
      b.setAttribute('loading', 'eager');
      b.restore(s);
      document.body.append(b);
    }, state);
    assert.equal(await until(page, 'copy'), 'done');
    // ... and a live widget of another view told to restore it: both show what the first shows.
    assert.equal(await until(page, 'patterns'), 'done');
    await page.evaluate((s) => document.getElementById('patterns').restore(s), state);
    await page.waitForFunction(() => document.getElementById('patterns').dataset.view === 'inside');
    assert.equal(await until(page, 'patterns'), 'done');
    const essentials = (json) => { const r = JSON.parse(json); return { text: r.text, ids: r.ids, attention: r.attention }; };
    const original = essentials(await page.evaluate(() => document.getElementById('inside').exportJson()));
    for (const id of ['copy', 'patterns']) {
      await page.waitForFunction((id) => document.getElementById(id).shadowRoot.querySelectorAll('.steps-table tbody tr').length === 5, id);
      assert.deepEqual(await page.evaluate((id) => document.getElementById(id).state, id), state, id);
      assert.deepEqual(essentials(await page.evaluate((id) => document.getElementById(id).exportJson(), id)), original, id);
    }

    // Hostile states: markup stays text, scripts never run, bad values are dropped and named.
    await page.evaluate(() => document.getElementById('copy').restore({ text: '<img src=x onerror="window.__pwned=1">hi', view: '<script>window.__pwned=2</script>', whatif: 'javascript:alert(1)', layer: -3, onclick: 'window.__pwned=3' }));
    assert.equal(await until(page, 'copy'), 'done');
    const notice = await page.locator('#copy .aw-notice').first().textContent();
    for (const m of [/view=<script>.* is not one of head/, /whatif=javascript:alert\(1\) is not one of/, /layer=-3 is not a whole number/, /onclick is not a setting/]) assert.match(notice, m);
    assert.equal(await page.evaluate(() => document.getElementById('copy').shadowRoot.querySelectorAll('img, script').length), 0);
    assert.match(await page.evaluate(() => document.getElementById('copy').state.text), /^<img src=x onerror/);
    for (const bad of ['[1, 2]', '{"view": ', 'x'.repeat(300 * 1024)]) {
      const thrown = await page.evaluate((b) => { try { document.getElementById('copy').restore(b); return null; } catch (e) { return String(e); } }, bad);
      assert.match(thrown ?? 'nothing thrown', /not a JSON object|not JSON|at most 256 KB/);
    }
    await page.waitForTimeout(500);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the lesson "from the formula to a real model": every figure a valid view, the toy and the poster at once, live ones when scrolled to', async () => {
  const smol = site.count(MODEL);
  const gemma = `${PREFIX}models/gemma-3-270m-q4_k_m.gguf`;
  const { browser, page, errors } = await browse();
  try {
    await page.goto(site.url + 'formula.html');
    await page.waitForFunction(() => [...document.querySelectorAll('attn-lab')].every((e) => e.dataset.view));
    const figures = await page.$$eval('attn-lab', (els) => els.map((e) => ({ id: e.id, view: e.dataset.view, state: e.dataset.state })));
    assert.ok(figures.length >= 8, `${figures.length} figures`);
    assert.ok(new Set(figures.map((f) => f.view)).size >= 8, JSON.stringify(figures));
    assert.deepEqual(figures.filter((f) => f.state === 'error'), []);
    // No download to open the page: the toy lab is drawn, the Gemma figure is its saved run.
    assert.equal(await until(page, 'lab-figure'), 'done');
    assert.equal(await until(page, 'mqa-figure'), 'done');
    assert.equal(await page.evaluate(() => document.getElementById('mqa-figure').dataset.source), 'static');
    assert.equal(await page.locator('#mqa-figure .thumb').count(), 72);
    assert.equal(site.count(MODEL) - smol, 0, 'nothing downloaded before a live figure is near');
    // Scrolled to, a live figure runs: the row of section 4 is the reference's.
    await page.locator('#inside-figure').scrollIntoViewIfNeeded();
    assert.equal(await until(page, 'inside-figure'), 'done');
    await page.waitForSelector('#inside-figure .steps-table tbody tr');
    const probs = await page.$$eval('#inside-figure .steps-table tbody tr td:nth-child(5) .num', (c) => c.map((x) => Number(x.textContent)));
    assert.deepEqual(probs.map((p) => p.toFixed(2)).slice(1, 5), ['0.22', '0.08', '0.01', '0.58']);
    assert.equal(site.count(gemma), 0, 'the 250 MB model only on Run live');
    await noSidewaysScroll(page);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a guided tour steps forward and back with the keyboard, each step showing its view; hostile, huge and broken tours are inert and say why', async () => {
  const evil = JSON.stringify({
    title: '<script>window.__pwned=1</script>Tour',
    steps: [
      { caption: 'Hi <img src=x onerror="window.__pwned=2"> [click](javascript:window.__pwned=3) <script>window.__pwned=4</script> [ok](https://example.org/)', settings: { view: 'lab', layer: 99999, whatif: 'javascript:x', onload: 'x' } },
      { caption: 'two', settings: { view: '<b>head</b>' } },
    ],
  });
  const pages = {
    '/tour.html': `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="${site.url}embed.js"></script></head><body>
<attn-lab id="t" tour="${site.url}tours/formula.json" loading="eager"></attn-lab>
<attn-lab id="evil" tour="/evil.json" loading="eager"></attn-lab>
<attn-lab id="huge" view="lab" tour="/huge.json" loading="eager"></attn-lab>
<attn-lab id="broken" view="lab" tour="/broken.json" loading="eager"></attn-lab></body></html>`,
    '/evil.json': evil,
    '/huge.json': `{"steps":[{"caption":"${'a'.repeat(50 * 1024 * 1024)}"}]}`,
    '/broken.json': '{"steps": [',
  };
  const tours = await serve(null, { pages });
  const { browser, page, errors } = await browse();
  try {
    await page.goto(tours.url + 'tour.html');
    const progress = () => page.locator('#t .tour-progress').textContent();
    await page.waitForSelector('#t .tour-progress');
    assert.match(await progress(), /step 1 of 10/);
    assert.equal(await until(page, 't'), 'done');
    assert.equal(await page.evaluate(() => document.getElementById('t').dataset.view), 'lab');
    // Forward with the arrow key: the step's view, head and what-if, run live.
    await page.click('#t .tour-caption');
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => document.getElementById('t').dataset.view === 'inside');
    assert.match(await progress(), /step 2 of 10/);
    assert.equal(await until(page, 't'), 'done');
    await page.waitForSelector('#t .whatif-summary');
    assert.match(await page.locator('#t .whatif-summary').textContent(), /Without ÷√d/);
    assert.equal(await page.locator('#t .steps-table tbody tr').count(), 8, 'the row of token 7 ("was")');
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => /Without the causal mask/.test(document.getElementById('t').shadowRoot.querySelector('.whatif-summary')?.textContent ?? ''));
    assert.match(await progress(), /step 3 of 10/);
    // Back, then Next by its button.
    await page.keyboard.press('ArrowLeft');
    await page.waitForFunction(() => /Without ÷√d/.test(document.getElementById('t').shadowRoot.querySelector('.whatif-summary')?.textContent ?? ''));
    assert.match(await progress(), /step 2 of 10/);
    await page.click('#t .tour-next');
    await page.click('#t .tour-next');
    await page.waitForFunction(() => document.getElementById('t').shadowRoot.querySelector('.tour-progress')?.textContent.includes('step 4 of 10'));
    await page.waitForFunction(() => !document.getElementById('t').shadowRoot.querySelector('.whatif-summary') && document.getElementById('t').dataset.state === 'done');
    assert.equal(await page.evaluate(() => document.getElementById('t').state.whatif), 'none');

    // The hostile tour: its markup is text, only the http(s) link is a link, bad settings named.
    await page.waitForSelector('#evil .tour-caption');
    assert.match(await page.locator('#evil .tour-caption').textContent(), /Hi <img src=x onerror="window.__pwned=2"> click <script>window.__pwned=4<\/script> ok/);
    assert.match(await page.locator('#evil .tour-title').textContent(), /^<script>window.__pwned=1<\/script>Tour$/);
    assert.deepEqual(await page.$$eval('#evil .tour a', (a) => a.map((x) => x.getAttribute('href'))), ['https://example.org/']);
    assert.equal(await page.evaluate(() => document.getElementById('evil').shadowRoot.querySelectorAll('.tour img, .tour script').length), 0);
    const notice = await page.locator('#evil .aw-notice').first().textContent();
    for (const m of [/step 1: layer=99999 is above/, /step 1: whatif=javascript:x is not one of/, /step 1: onload is not a setting/, /step 2: view=<b>head<\/b> is not one of head/]) assert.match(notice, m);
    // Too large and broken tours: refused with the reason; the figure stays.
    await page.waitForSelector('#huge .aw-notice');
    assert.match(await page.locator('#huge .aw-notice').first().textContent(), /The tour could not be used: .*at most 256 KB/);
    await page.waitForSelector('#broken .aw-notice');
    assert.match(await page.locator('#broken .aw-notice').first().textContent(), /The tour could not be used: the tour is not JSON/);
    for (const id of ['huge', 'broken']) assert.equal(await until(page, id), 'done');
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    tours.close();
  }
});

test('?tour= and ?present=1 on the playground open the tour on one page in large type; both lessons ship as tours', async () => {
  const { browser, page, errors } = await browse({ width: 1280, height: 900 });
  try {
    await page.goto(site.url + '?tour=tours/sinks.json&present=1');
    await page.waitForURL(/\/embed\.html\?/);
    await page.waitForFunction(() => document.querySelector('attn-lab')?.shadowRoot?.querySelector('.tour-progress'), null, { timeout: 60_000 });
    assert.match(await page.locator('attn-lab .tour-progress').textContent(), /step 1 of 8/);
    assert.equal(await page.evaluate(() => !!document.querySelector('attn-lab').shadowRoot.querySelector('.aw.present')), true);
    await page.waitForFunction(() => document.querySelector('attn-lab').dataset.view === 'head');
    // Both shipped tours are used whole: no setting of theirs is dropped.
    for (const t of ['sinks', 'formula']) {
      await page.goto(`${site.url}embed.html?tour=tours/${t}.json`);
      await page.waitForFunction(() => document.querySelector('attn-lab')?.shadowRoot?.querySelector('.tour-progress'), null, { timeout: 60_000 });
      assert.equal(await page.locator('attn-lab .aw-notice').count(), 0, `${t}: ${await page.locator('attn-lab .aw-notice').allTextContents()}`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
