// A bare dedicated worker: the module, the matrices, the decoder — no page work beside it.
import { instantiate, timeMatrices, decode } from '../kernels.mjs';

onmessage = async ({ data: { wasm, model, n } }) => {
  try {
    const ex = await instantiate(await (await fetch(wasm)).arrayBuffer());
    const out = timeMatrices(ex).rows;
    const gguf = new Uint8Array(await (await fetch(model)).arrayBuffer());
    for (const long of [false, true]) {
      const ex2 = await instantiate(await (await fetch(wasm)).arrayBuffer());
      const d = decode(ex2, gguf, n, long);
      out.push(`decoder, ${d.prompt}-token prompt, ${d.steps} steps: time to first token ${d.prefill.toFixed(0)} ms; per token mean ${d.mean.toFixed(1)} ms, best ${d.best.toFixed(1)}`);
    }
    postMessage(out.join('\n'));
  } catch (e) {
    postMessage(`error: ${e.stack ?? e}`);
  }
};
