// The negative half of the declaration checks: misuse.ts must fail to compile,
// with exactly the errors its `// error: <text>` lines announce (each expected
// on the statement under the marker, up to the next blank line), and no others.
// So a misuse that starts compiling fails this test, and so does a misuse line
// that fails for some other reason (a typo in the test itself).
//
// Run: node --test client/types-test/misuse.test.mjs (after npm install: it needs node_modules/.bin/tsc)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const tsc = fileURLToPath(new URL('../../node_modules/.bin/tsc', import.meta.url));

/** The `// error:` markers of a source: [{text, from, to}] (1-based lines). */
export function expectations(source) {
  const lines = source.split('\n');
  const out = [];
  lines.forEach((line, i) => {
    const m = /^\/\/ error: (.+)$/.exec(line.trim());
    if (!m) return;
    let to = i + 1;
    while (to + 1 < lines.length && lines[to + 1].trim() !== '' && !/^\/\/ error:/.test(lines[to + 1].trim())) to++;
    out.push({ text: m[1], from: i + 2, to: to + 1 });
  });
  return out;
}

/** tsc's diagnostics (of one file, if given): [{file, line, code, text}], continuation lines folded in. */
export function diagnostics(output, file) {
  const out = [];
  for (const line of output.split('\n')) {
    const m = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line);
    if (m) out.push({ file: m[1], line: Number(m[2]), code: m[4], text: m[5] });
    else if (out.length && /^\s/.test(line)) out[out.length - 1].text += ' ' + line.trim();
  }
  return file === undefined ? out : out.filter((d) => d.file === file);
}

test('expectations() and diagnostics() read markers and tsc output', () => {
  const src = 'x\n// error: A\nbad(\n  1)\n\n// error: B\nbad2()\n';
  assert.deepEqual(expectations(src), [
    { text: 'A', from: 3, to: 4 },
    { text: 'B', from: 7, to: 7 },
  ]);
  const out = 'f.ts(4,3): error TS2345: Argument\n  more detail\nother.ts(1,1): error TS1: x\n';
  assert.deepEqual(diagnostics(out, 'f.ts'), [{ file: 'f.ts', line: 4, code: 'TS2345', text: 'Argument more detail' }]);
  assert.equal(diagnostics(out).length, 2);
});

test('every misuse in misuse.ts fails to compile, for the announced reason', () => {
  assert.ok(existsSync(tsc), `${tsc} is missing: run npm install (scripts/bootstrap does)`);
  const expected = expectations(readFileSync(new URL('misuse.ts', import.meta.url), 'utf8'));
  assert.ok(expected.length >= 10, 'misuse.ts lost its markers');
  const r = spawnSync(tsc, ['--noEmit', '--pretty', 'false', '-p', 'tsconfig.misuse.json'], {
    cwd: here,
    encoding: 'utf8',
  });
  assert.equal(r.error, undefined);
  const output = r.stdout + r.stderr;
  assert.notEqual(r.status, 0, `tsc accepted misuse.ts:\n${output}`);
  const found = diagnostics(output, 'misuse.ts');
  assert.equal(found.length, diagnostics(output).length, `errors outside misuse.ts:\n${output}`);
  for (const e of expected) {
    const hit = found.filter((d) => d.line >= e.from && d.line <= e.to);
    assert.equal(
      hit.length,
      1,
      `lines ${e.from}-${e.to}: expected one error containing "${e.text}", got:\n${JSON.stringify(hit, null, 2)}`,
    );
    assert.ok(hit[0].text.includes(e.text), `line ${hit[0].line}: expected "${e.text}" in: ${hit[0].text}`);
  }
  const unexpected = found.filter((d) => !expected.some((e) => d.line >= e.from && d.line <= e.to));
  assert.deepEqual(unexpected, [], 'errors on lines without an // error: marker');
});
