// The engine's kernels under node (V8 without a browser):
//   node --experimental-wasm-relaxed-simd bench/wasm/node.mjs [module.wasm]
// (build first: see bench/wasm/README.md). Exits 1 if the gemv check fails.
import fs from 'node:fs';
import { instantiate, timeMatrices } from './kernels.mjs';

const file = process.argv[2] ?? new URL('../../target/relaxed-simd/wasm32-unknown-unknown/release/attnlab_wasm_bench.wasm', import.meta.url).pathname;
const { rows, bad } = timeMatrices(await instantiate(fs.readFileSync(file)));
console.log(rows.join('\n'));
process.exit(bad ? 1 : 0);
