// Other architectures in the browser: "Open GGUF…" with the small random-weight GPT-2 and
// Qwen3 files of tests/data/archs/ (llama.cpp's tensor names; transformers' numbers beside
// them). The page runs the text on the opened file — in the CPU worker, and GPT-2 in WGSL on
// SwiftShader's WebGPU too (LayerNorm, biases, GELU, learned positions through Chromium's own
// shader compiler) — and its exported rows match transformers; the picker names the family
// and the attention layout. Chromium, headless.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS, WEBGPU_ARGS } from './serve.mjs';

const srv = await serve(new URL('../../dist', import.meta.url).pathname);
test.after(() => srv.close());

const data = (name) => new URL(`../data/archs/${name}`, import.meta.url).pathname;

const MHA = /— GPT-2, 4 heads, each with its own keys \(MHA\)/;
const CASES = [['gpt2', MHA, 'cpu', 1e-4], ['qwen3', /Qwen3, 4 query heads sharing 2 key heads \(GQA\)/, 'cpu', 1e-4], ['gpt2', MHA, 'webgpu', 5e-4]];
for (const [arch, words, backend, tol] of CASES) {
  test(`an opened ${arch} file runs on ${backend === 'cpu' ? 'the CPU worker' : 'WebGPU (SwiftShader)'} with transformers' numbers`, async () => {
    const ref = JSON.parse(fs.readFileSync(data(`tiny-${arch}-public.json`)));
    const c = ref.cases[0];
    const browser = await launchChromium(backend === 'cpu' ? NO_WEBGPU_ARGS : WEBGPU_ARGS);
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`${srv.url}?run=0&layer=1&head=2&text=${encodeURIComponent(c.text)}${backend === 'cpu' ? '' : '&backend=webgpu'}`);
      await page.waitForFunction(() => ['ready', 'done'].includes(document.documentElement.dataset.attnlabState), null, { timeout: 240_000 });
      await page.setInputFiles('input[type=file]', data(`tiny-${arch}-public.gguf`));
      // The picker names the opened file once it is loaded; then the text runs on it.
      await page.waitForFunction(() => /Your file:/.test(document.querySelector('.model-picker select')?.selectedOptions[0]?.textContent ?? ''), null, { timeout: 120_000 });
      assert.match(await page.evaluate(() => document.querySelector('.model-picker select').selectedOptions[0].textContent), words);
      await page.waitForFunction(() => ['ready', 'done'].includes(document.documentElement.dataset.attnlabState), null, { timeout: 120_000 });
      await page.press('#attnlab-text', 'Control+Enter');
      await page.waitForFunction(() => {
        const j = window.attnlab.exportJson();
        return document.documentElement.dataset.attnlabState === 'done' && j && JSON.parse(j).n_layers === 2;
      }, null, { timeout: 120_000 });
      const result = JSON.parse(await page.evaluate(() => window.attnlab.exportJson()));
      assert.equal(result.backend, backend);
      assert.deepEqual(result.ids, c.ids);
      const keys = Object.keys(result.attention);
      assert.ok(keys.length >= 1, 'a head is exported');
      for (const key of keys) {
        const [l, h] = key.split('.').map(Number);
        let worst = 0;
        c.attention[l][h].forEach((row, i) => row.forEach((p, j) => { worst = Math.max(worst, Math.abs(result.attention[key][i][j] - p)); }));
        assert.ok(worst <= tol, `${arch} on ${backend}, head ${key}: attention differs by ${worst}`);
      }
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
}
