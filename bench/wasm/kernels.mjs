// Shared by node.mjs and web/worker.js: instantiate the bare module and time SmolLM2's matrices.
export const MATRICES = [
  [0, 1536, 576, 60, 'Q4_1 1536×576 ×60 (ffn_gate, ffn_up)'],
  [0, 576, 1536, 30, 'Q4_1 576×1536 ×30 (ffn_down)'],
  [0, 576, 576, 60, 'Q4_1 576×576 ×60 (attn_q, attn_output)'],
  [0, 192, 576, 60, 'Q4_1 192×576 ×60 (attn_k, attn_v)'],
  [1, 49152, 576, 1, 'Q8_0 49152×576 (output)'],
];

export async function instantiate(bytes) {
  const mod = await WebAssembly.compile(bytes);
  const imports = {};
  // The engine's only call out is the clock (js_sys::Date::now); nothing else may be reached.
  for (const imp of WebAssembly.Module.imports(mod)) {
    imports[imp.module] ??= {};
    imports[imp.module][imp.name] = imp.name.includes('now') ? () => Date.now() : () => { throw new Error(`import ${imp.module}.${imp.name} called`); };
  }
  return (await WebAssembly.instantiate(mod, imports)).exports;
}

// Markdown rows: per matrix kind, the best of `reps` passes, gemv (1 token) and panel (prefill kernel).
export function timeMatrices(ex, reps = 7) {
  const bad = ex.check();
  const rows = [`gemv checked on ${ex.checks()} values of every format: ${bad} off by more than 1e-5 of Σ|x·w|`, '| matrices | one token, gemv (ms) | one token, panel kernel (ms) |', '|---|---|---|'];
  let total = 0;
  for (const [ty, r, c, copies, name] of MATRICES) {
    ex.setup(ty, r, c, copies, 1);
    const best = [0, 1].map((path) => { let b = Infinity; for (let i = 0; i < reps; i++) { const t0 = performance.now(); ex.run(path, 1); b = Math.min(b, performance.now() - t0); } return b; });
    total += best[0];
    rows.push(`| ${name} | ${best[0].toFixed(1)} | ${best[1].toFixed(1)} |`);
  }
  rows.push(`| all of a step's matrices | ${total.toFixed(1)} | |`);
  return { rows, bad };
}

// The decoder: load the GGUF bytes, then prefill + `n` steps; per-step times.
export function decode(ex, gguf, n, long) {
  const p = ex.alloc(gguf.length);
  new Uint8Array(ex.memory.buffer, p, gguf.length).set(gguf);
  const prompt = ex.load(p, gguf.length, n, long ? 1 : 0);
  const t = [];
  for (;;) {
    const t0 = performance.now();
    const tok = ex.step();
    t.push(performance.now() - t0);
    if (tok === -1 || t.length > n + 1) break;
  }
  const steps = t.slice(1, -1);
  return { prompt, prefill: t[0], mean: steps.reduce((a, b) => a + b, 0) / steps.length, best: Math.min(...steps), steps: steps.length };
}
