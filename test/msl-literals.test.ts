import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emitCpp, parseMsl } from '../src/msl/index.js';

test('unsuffixed floating literals are emitted as float (MSL has no double); suffixed and integer ones are kept', () => {
  const src = 'kernel void k(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) { y[i] = y[i] * 0.7978845608 + 1e-3 + 2.5f + 3 + 0x10 + 1.5h + .25; }\n';
  const code = emitCpp(parseMsl(src, 'lit.metal')).code;
  assert.match(code, /y\[i\] \* 0\.7978845608f \+ 1e-3f \+ 2\.5f \+ 3 \+ 0x10 \+ half\(1\.5f\) \+ \.25f;/);
});
