// The site works from any path: dist/ served from a subfolder (/sub/dir/, like a GitHub Pages
// project site or a course's folder), where everything outside the folder is a 404. The
// playground, the lesson, a widget page and the iframe page all finish with the reference
// numbers, and the server answers none of their requests with a 404 (nothing is asked of the
// site root). Debian's Chromium, headless, CPU path (WebGPU off).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reference, compareWithReference } from './reference.mjs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from './serve.mjs';


const TEXT = reference.cases[0].text;
const PREFIX = '/sub/dir/';

// A host page in the same folder, loading the widget script by its absolute path.
const widgetPage = `<!doctype html><html><head><meta charset="utf-8"><title>course</title>
<link rel="icon" href="data:,"><script type="module" src="${PREFIX}embed.js"></script></head><body><h1>A course page in a subfolder</h1>
<attn-lab id="w" text="${TEXT}" layer="3" head="4" loading="eager" controls="compact"></attn-lab>
</body></html>`;

const srv = await serve(new URL('../../dist', import.meta.url).pathname, { prefix: PREFIX, pages: { [`${PREFIX}course.html`]: widgetPage } });
test.after(() => srv.close());

async function open(url) {
  const browser = await launchChromium(NO_WEBGPU_ARGS);
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => { errors.push('dialog: ' + d.message()); d.dismiss(); });
  const missed = srv.notFound().length;
  await page.goto(url);
  // Every path the server answered 404 since this page opened. The pages declare their icon
  // (a browser asks the origin's root for /favicon.ico when a page declares none).
  const notFound = () => srv.notFound().slice(missed);
  return { browser, page, errors, notFound };
}


const widgetState = (page, id) => page.evaluate((id) => document.getElementById(id)?.dataset.state, id);
async function widgetUntil(page, id, timeout = 240_000) {
  await page.waitForFunction((id) => ['done', 'error'].includes(document.getElementById(id)?.dataset.state), id, { timeout });
  return widgetState(page, id);
}
async function pageUntil(page, timeout = 240_000) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.documentElement.dataset.attnlabState), null, { timeout });
  return page.evaluate(() => document.documentElement.dataset.attnlabState);
}

test('the playground in a subfolder runs with the reference numbers and asks nothing of the site root', async () => {
  const { browser, page, errors, notFound } = await open(`${srv.url}?text=${encodeURIComponent(TEXT)}&layer=3&head=4&run=1`);
  try {
    assert.equal(await pageUntil(page), 'done');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.attnlabBackend), 'cpu');
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.equal(result.backend, 'cpu');
    compareWithReference(result, 3, 4, { full: true });
    // The URL state stays in the folder.
    assert.equal(await page.evaluate(() => location.pathname), PREFIX);
    assert.match(await page.evaluate(() => location.search), /layer=3&head=4/);
    // The Embed dialog's snippets point into the folder.
    await page.click('button.embed-button');
    assert.ok((await page.inputValue('.snippet-element')).includes(`src="${srv.url}embed.js"`), await page.inputValue('.snippet-element'));
    assert.ok((await page.inputValue('.snippet-iframe')).includes(`src="${srv.url}embed.html?`), await page.inputValue('.snippet-iframe'));
    assert.deepEqual(notFound(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the lesson in a subfolder: eager widgets, poster and U-curve finish, no 404', async () => {
  const { browser, page, errors, notFound } = await open(`${srv.url}lesson.html`);
  try {
    for (const id of ['head-figure', 'model-figure', 'sink-figure']) assert.equal(await widgetUntil(page, id), 'done', id);
    assert.equal(await page.evaluate(() => document.getElementById('head-figure').dataset.backend), 'cpu');
    compareWithReference(JSON.parse(await page.evaluate(() => document.getElementById('head-figure').exportJson())), 3, 4);
    // Shipped figures (result-src="figures/…", the position experiment) load from the folder.
    assert.equal(await widgetUntil(page, 'poster-figure'), 'done');
    assert.equal(await page.evaluate(() => document.getElementById('poster-figure').dataset.source), 'static');
    assert.equal(await widgetUntil(page, 'position-figure'), 'done');
    assert.deepEqual(notFound(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('a page in the subfolder with <script src="/sub/dir/embed.js"> and an <attn-lab> finishes, no 404', async () => {
  const { browser, page, errors, notFound } = await open(`${srv.url}course.html`);
  try {
    assert.equal(await widgetUntil(page, 'w'), 'done');
    assert.equal(await page.evaluate(() => document.getElementById('w').dataset.backend), 'cpu');
    compareWithReference(JSON.parse(await page.evaluate(() => document.getElementById('w').exportJson())), 3, 4);
    assert.deepEqual(notFound(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('embed.html in a subfolder finishes with the reference numbers, no 404', async () => {
  const { browser, page, errors, notFound } = await open(`${srv.url}embed.html?text=${encodeURIComponent(TEXT)}&layer=3&head=4`);
  try {
    assert.equal(await pageUntil(page), 'done');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.attnlabBackend), 'cpu');
    compareWithReference(JSON.parse(await page.evaluate(() => window.attnlab.exportJson())), 3, 4);
    assert.deepEqual(notFound(), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
