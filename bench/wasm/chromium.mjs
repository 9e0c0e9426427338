// The engine's kernels and its decoder in a bare Chromium worker (headless, as the page's CPU
// worker runs, but with no page drawing beside it):
//   node bench/wasm/chromium.mjs [module.wasm] [model.gguf]
// (build first: see bench/wasm/README.md).
import path from 'node:path';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from '../../tests/web/serve.mjs';

const root = new URL('../..', import.meta.url).pathname;
const wasm = path.resolve(process.argv[2] ?? path.join(root, 'target/relaxed-simd/wasm32-unknown-unknown/release/attnlab_wasm_bench.wasm'));
const model = path.resolve(process.argv[3] ?? path.join(root, 'models/SmolLM2-135M-Instruct.Q4_1.gguf'));
const page = `<!doctype html><meta charset="utf-8"><script>
window.bench = (args) => new Promise((resolve) => { const w = new Worker('/bench/wasm/web/worker.js', { type: 'module' }); w.onmessage = (e) => resolve(e.data); w.postMessage(args); });
</script>`;
// Serve the repository root (the worker's files, the module, the model) plus the page.
const srv = await serve(root, { pages: { '/bench.html': page } });
const rel = (p) => '/' + path.relative(root, p).split(path.sep).join('/');
for (const p of [wasm, model]) if (!fs.existsSync(p) || path.relative(root, p).startsWith('..')) throw new Error(`${p}: missing, or outside the repository`);
const browser = await launchChromium(NO_WEBGPU_ARGS);
const tab = await browser.newPage();
await tab.goto(`${srv.url}bench.html`);
const out = await tab.evaluate((a) => window.bench(a), { wasm: rel(wasm), model: rel(model), n: 32 });
console.log(out);
await browser.close();
srv.close();
process.exit(out.startsWith('error') ? 1 : 0);
