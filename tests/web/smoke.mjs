// End-to-end smoke test of the built site (dist/) in Debian's Chromium, headless:
// the page loads the model with a progress bar, tokenizes the text, runs the CPU engine in
// wasm, and shows next-token candidates and sink mass. Run by `make test` after `trunk build`.
import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const root = path.resolve(process.argv[2] ?? 'dist');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };
const server = http.createServer((req, res) => {
  const file = path.join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname));
  if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
    const index = path.join(root, 'index.html');
    res.writeHead(200, { 'content-type': 'text/html' });
    return fs.createReadStream(index).pipe(res);
  }
  res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'content-length': fs.statSync(file).size });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-gpu'],
});
let failures = 0;
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('.badge', { timeout: 120_000 });
  const badge = await page.textContent('.badge');
  assert.match(badge, /30 layers × 9 heads \(3 KV heads\)/);
  const tokens = await page.$$eval('.token', (els) => els.map((e) => e.textContent));
  assert.deepEqual(tokens, ['The', ' dog', ' chased', ' the', ' cat', ' because', ' it', ' was', ' hungry', '.']);
  // Typed markup stays text.
  await page.fill('#text', '<script>alert(1)</script>');
  assert.ok((await page.$$eval('.token', (els) => els.map((e) => e.textContent).join(''))) === '<script>alert(1)</script>');
  await page.fill('#text', 'The dog chased the cat because it was hungry.');
  await page.click('button');
  await page.waitForSelector('.sink', { timeout: 120_000 });
  assert.equal((await page.$$('.sink')).length, 30);
  const top = await page.textContent('ol li');
  assert.match(top, /"\\n"/, 'the top next token after the example is a newline (as in the reference)');
  assert.deepEqual(errors, []);
  console.log('web smoke: page loads the model, tokenizes, runs 30 layers in wasm');
} catch (e) {
  failures += 1;
  console.error(e);
} finally {
  await browser.close();
  server.close();
}
console.log(`${failures ? 0 : 1} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
