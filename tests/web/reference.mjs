// Hugging Face transformers' numbers for the default model (tests/data/forward.json, from
// ../shared/reference/) and the one comparison every browser test makes against them.
import assert from 'node:assert/strict';
import fs from 'node:fs';

export const reference = JSON.parse(fs.readFileSync(new URL('../data/forward.json', import.meta.url)));

/// The exported head `layer.head` of `result` (the `attnlab inspect --json` schema) against the
/// reference case of the same text, within 5e-4; `full` also checks every head's sink mass and
/// the top next-token logit (which the playground exports). The largest difference.
export function compareWithReference(result, layer, head, { full = false } = {}) {
  const c = reference.cases.find((c) => c.text === result.text);
  assert.ok(c, `a reference case for ${JSON.stringify(result.text)}`);
  assert.deepEqual(result.ids, c.ids);
  const rows = result.attention[`${layer}.${head}`];
  assert.ok(rows, 'the selected head is exported');
  let worst = 0;
  c.attention[layer][head].forEach((row, i) => row.forEach((p, j) => { worst = Math.max(worst, Math.abs(rows[i][j] - p)); }));
  assert.ok(worst <= 5e-4, `attention differs by ${worst}`);
  if (full) {
    let sink = 0;
    c.sink_mass_key0.forEach((hs, l) => hs.forEach((m, h) => { sink = Math.max(sink, Math.abs(result.sink_mass_key0[l][h] - m)); }));
    assert.ok(sink <= 1e-3, `sink mass differs by ${sink}`);
    assert.equal(result.last_logits_top[0][0], c.last_logits_top64[0][0]);
    assert.ok(Math.abs(result.last_logits_top[0][1] - c.last_logits_top64[0][1]) <= 2e-2);
  }
  return worst;
}
