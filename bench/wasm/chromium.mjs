// The engine's kernels and its decoder in a bare Chromium worker (headless, as the page's CPU
// worker runs, but with no page drawing beside it):
//   node bench/wasm/chromium.mjs [--busy=K] [module.wasm] [model.gguf]
// (build first: see bench/wasm/README.md). --busy=K keeps K more workers spinning meanwhile:
// what a page that draws takes from the engine on a small machine.
import path from 'node:path';
import fs from 'node:fs';
import { serve, launchChromium, NO_WEBGPU_ARGS } from '../../tests/web/serve.mjs';

const root = new URL('../..', import.meta.url).pathname;
const busy = Number(process.argv.find((a) => a.startsWith('--busy='))?.slice(7) ?? 0);
const [wasmArg, modelArg] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const wasm = path.resolve(wasmArg ?? path.join(root, 'target/relaxed-simd/wasm32-unknown-unknown/release/attnlab_wasm_bench.wasm'));
const model = path.resolve(modelArg ?? path.join(root, 'models/SmolLM2-135M-Instruct.Q4_1.gguf'));
const spin = 'onmessage = () => { let a = 0; for (;;) a += Math.sqrt(a + 1); };';
const page = `<!doctype html><meta charset="utf-8"><script>
window.bench = (args, busy) => new Promise((resolve) => {
  const spinners = Array.from({ length: busy }, () => { const s = new Worker(URL.createObjectURL(new Blob([${JSON.stringify(spin)}]))); s.postMessage(0); return s; });
  const w = new Worker('/bench/wasm/web/worker.js', { type: 'module' });
  w.onmessage = (e) => { spinners.forEach((s) => s.terminate()); resolve(e.data); };
  w.postMessage(args);
});
</script>`;
// Serve the repository root (the worker's files, the module, the model) plus the page.
const srv = await serve(root, { pages: { '/bench.html': page } });
const rel = (p) => '/' + path.relative(root, p).split(path.sep).join('/');
for (const p of [wasm, model]) if (!fs.existsSync(p) || path.relative(root, p).startsWith('..')) throw new Error(`${p}: missing, or outside the repository`);
const browser = await launchChromium(NO_WEBGPU_ARGS);
const tab = await browser.newPage();
await tab.goto(`${srv.url}bench.html`);
const out = await tab.evaluate(([a, b]) => window.bench(a, b), [{ wasm: rel(wasm), model: rel(model), n: 32 }, busy]);
if (busy) console.log(`(${busy} more worker(s) spinning meanwhile)`);
console.log(out);
await browser.close();
srv.close();
process.exit(out.startsWith('error') ? 1 : 0);
