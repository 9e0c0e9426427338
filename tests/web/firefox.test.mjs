// A second browser: Debian's Firefox ESR (/usr/bin/firefox-esr, `make setup-apt`), headless,
// driven by puppeteer-core over WebDriver BiDi (no browser download). The core of the page's
// contract: the playground's reference numbers on the CPU path, an <attn-lab> widget, and
// the site served from a subfolder with no request outside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import puppeteer from 'puppeteer-core';
import { reference, compareWithReference } from './reference.mjs';
import { serve } from './serve.mjs';

const FIREFOX = '/usr/bin/firefox-esr';

const TEXT = reference.cases[0].text;
const dist = new URL('../../dist', import.meta.url).pathname;

const launch = () => puppeteer.launch({
  browser: 'firefox',
  executablePath: FIREFOX,
  headless: true,
  env: { ...process.env, MOZ_HEADLESS: '1' },
});

// Firefox ESR 140 on Linux has no WebGPU, so the page takes the CPU worker by itself. Should a
// later ESR expose navigator.gpu, the tests ask for the CPU path (?backend=cpu, backend="cpu")
// so that they keep comparing the CPU numbers.
const probe = await serve(null, { pages: { '/': '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>probe</title></head><body></body></html>' } });
const FORCE_CPU = await (async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(probe.url);
    return await page.evaluate(() => Boolean(navigator.gpu));
  } finally {
    await browser.close();
    probe.close();
  }
})();
const BACKEND_QUERY = FORCE_CPU ? '&backend=cpu' : '';
const BACKEND_ATTR = FORCE_CPU ? ' backend="cpu"' : '';

const widgetPage = (base) => `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>widget</title>
<script type="module" src="${base}embed.js"></script></head><body>
<attn-lab id="w" text="${TEXT}" layer="3" head="4" loading="eager" controls="compact"${BACKEND_ATTR}></attn-lab>
</body></html>`;

const srv = await serve(dist, { pages: { '/test-widget.html': widgetPage('/') } });
const sub = await serve(dist, { prefix: '/sub/dir/' });
test.after(() => { srv.close(); sub.close(); });

// Puppeteer's default 800×600 viewport (page.setViewport needs a BiDi command Firefox 140
// lacks: emulation.setScreenOrientationOverride).
async function open(url) {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    return { browser, page, errors };
  } catch (e) {
    await browser.close();
    throw e;
  }
}


async function pageUntil(page, timeout = 300_000) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.documentElement.dataset.attnlabState), { timeout, polling: 500 });
  return page.evaluate(() => document.documentElement.dataset.attnlabState);
}

const RUN_QUERY = `?text=${encodeURIComponent(TEXT)}&layer=3&head=4&run=1${BACKEND_QUERY}`;

test('Firefox: the playground runs on the CPU with the reference numbers', async () => {
  const { browser, page, errors } = await open(srv.url + RUN_QUERY);
  try {
    const state = await pageUntil(page);
    assert.equal(state, 'done', await page.evaluate(() => document.querySelector('.error')?.textContent ?? ''));
    assert.equal(await page.evaluate(() => document.documentElement.dataset.attnlabBackend), 'cpu');
    const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
    assert.equal(result.backend, 'cpu');
    compareWithReference(result, 3, 4, { full: true });
    assert.match(await page.evaluate(() => location.search), /layer=3&head=4/);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('Firefox: an <attn-lab> widget loaded by embed.js finishes with the reference numbers', async () => {
  const { browser, page, errors } = await open(srv.url + 'test-widget.html');
  try {
    await page.waitForFunction(() => ['done', 'error'].includes(document.getElementById('w')?.dataset.state), { timeout: 300_000, polling: 500 });
    const state = await page.evaluate(() => document.getElementById('w').dataset.state);
    assert.equal(state, 'done', await page.evaluate(() => document.getElementById('w').shadowRoot?.textContent.slice(0, 500)));
    assert.equal(await page.evaluate(() => document.getElementById('w').dataset.backend), 'cpu');
    compareWithReference(JSON.parse(await page.evaluate(() => document.getElementById('w').exportJson())), 3, 4);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('Firefox: the playground served from a subfolder finishes, nothing asked outside it', async () => {
  const missed = sub.notFound().length;
  const { browser, page, errors } = await open(sub.url + RUN_QUERY);
  try {
    assert.equal(await pageUntil(page), 'done');
    assert.equal(await page.evaluate(() => location.pathname), '/sub/dir/');
    compareWithReference(JSON.parse(await page.evaluate(() => window.attnlab.exportJson())), 3, 4);
    // Nothing outside the folder, the page's icon included (a browser asks the origin's root
    // for /favicon.ico when a page declares none).
    assert.deepEqual(sub.notFound().slice(missed), []);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
