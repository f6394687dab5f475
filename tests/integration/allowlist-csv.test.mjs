// The operator's CSV import: from an HR export to the E.164 KV keys the
// worker's allowlist reads (`allow:phone:+{countryCode}{purePhoneNumber}`),
// then staff members bind their phones through the worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allowlistEntries, normalisePhone, parsePhone } from '../../scripts/allowlist-csv.mjs';
import { startStack, built, login, call, bearer } from '../support/stack.mjs';

// An HR export: BOM, CRLF, a quoted name with a comma, staff in five
// countries, one person listed three times in three spellings, bad rows.
const HR_EXPORT = [
  '\uFEFF姓名,部门,手机号',
  '张三,培训部,138 0013 8000',
  '"李四, Jr.",IT,+86-139-0013-9000',
  'Dana Smith,US office,+1 (310) 555-1234',
  '陳大文,HK office,+852 9123 4567',
  'Tan Wei Ming,SG office,0065 8123 4567',
  '王五,HR,not-a-phone',
  '赵六,HR,9123 4567',
  '钱七,HR,21234567890',
  '张三,培训部,+86 13800138000',
  '张三 (dup),培训部,0086.138.0013.8000',
].join('\r\n');

test('mainland mobiles without a country code are +86; with +86 or 0086 too', () => {
  for (const raw of ['13800138000', '138 0013 8000', '138-0013-8000', '+86 138-0013-8000', '+8613800138000']) {
    assert.equal(normalisePhone(raw), '+8613800138000', raw);
  }
  assert.equal(normalisePhone('0086 13800138000'), '+8613800138000');
  assert.equal(normalisePhone('(0086) 138.0013.8000'), '+8613800138000');
  // Full-width digits and plus, as Chinese input methods type them.
  assert.equal(normalisePhone('＋８６ １３８００１３８０００'), '+8613800138000');
});

test('other countries keep their country code (+ or 00), so equal digits stay different people', () => {
  // The US number the old script turned into 13105551234, a valid mainland mobile.
  assert.equal(normalisePhone('+1 310 555 1234'), '+13105551234');
  assert.equal(normalisePhone('+1 (310) 555-1234'), '+13105551234');
  assert.equal(normalisePhone('001.310.555.1234'), '+13105551234');
  assert.notEqual(normalisePhone('+1 310 555 1234'), normalisePhone('13105551234'));
  assert.equal(normalisePhone('13105551234'), '+8613105551234');
  // Hong Kong and Singapore both have 8-digit numbers.
  assert.equal(normalisePhone('+852 9123 4567'), '+85291234567');
  assert.equal(normalisePhone('00852-9123-4567'), '+85291234567');
  assert.equal(normalisePhone('+65 9123 4567'), '+6591234567');
  // The national trunk prefix written as (0) is not part of the number.
  assert.equal(normalisePhone('+44 (0)20 7946 0000'), '+442079460000');
});

test('numbers without a country code, and non-numbers, are refused with a reason', () => {
  // A bare 8-digit number: Hong Kong or Singapore?
  assert.equal(normalisePhone('9123 4567'), null);
  assert.match(parsePhone('91234567').error, /no country code/);
  // 11 digits that are not a mainland mobile (the 1[3-9] rule).
  assert.equal(normalisePhone('21234567890'), null);
  assert.equal(normalisePhone('12345678901'), null);
  assert.match(parsePhone('12345678901').error, /no country code/);
  // 86 in front without + or 00 is not a country code either.
  assert.equal(normalisePhone('8613800138000'), null);
  // +86 must be a mainland mobile (a Beijing landline never comes from WeChat).
  assert.match(parsePhone('+86 10 6552 9988').error, /\+86 but not/);
  assert.equal(normalisePhone('+86 1380013800'), null);
  // Country codes do not start with 0; E.164 has at most 15 digits, and 7 is short already.
  assert.equal(normalisePhone('+0 123 456 7890'), null);
  assert.equal(normalisePhone('+1234567890123456'), null);
  assert.equal(normalisePhone('+12345'), null);
  assert.equal(normalisePhone('call me'), null);
  assert.equal(normalisePhone('138-0013-8000 ext 12'), null);
  assert.equal(normalisePhone(''), null);
  assert.equal(parsePhone('  ').error, 'no phone number');
});

test('an HR export becomes E.164 allow:phone keys, with bad rows reported and duplicates collapsed', () => {
  const { entries, rejected } = allowlistEntries(HR_EXPORT);
  assert.deepEqual(entries, [
    { key: 'allow:phone:+8613800138000', value: '张三' },
    { key: 'allow:phone:+8613900139000', value: '李四, Jr.' },
    { key: 'allow:phone:+13105551234', value: 'Dana Smith' },
    { key: 'allow:phone:+85291234567', value: '陳大文' },
    { key: 'allow:phone:+6581234567', value: 'Tan Wei Ming' },
  ]);
  assert.deepEqual(
    rejected.map(({ line, value }) => ({ line, value })),
    [
      { line: 7, value: 'not-a-phone' },
      { line: 8, value: '9123 4567' },
      { line: 9, value: '21234567890' },
    ],
  );
  assert.match(rejected[0].reason, /not a phone number/);
  assert.match(rejected[1].reason, /no country code/);
  assert.match(rejected[2].reason, /no country code/);
});

test('a headerless list works too; a bad first line is reported, not taken for a header', () => {
  const ok = allowlistEntries('13800138000\n+852 9123 4567\n');
  assert.deepEqual(
    ok.entries.map((e) => e.key),
    ['allow:phone:+8613800138000', 'allow:phone:+85291234567'],
  );
  assert.deepEqual(ok.rejected, []);
  const bad = allowlistEntries('91234567\n13900139000\n');
  assert.deepEqual(
    bad.entries.map((e) => e.key),
    ['allow:phone:+8613900139000'],
  );
  assert.deepEqual(
    bad.rejected.map((r) => r.line),
    [1],
  );
  // A first row without digits is a header, whatever its words.
  const titled = allowlistEntries('Staff phones\n13900139000\n');
  assert.deepEqual(
    titled.entries.map((e) => e.key),
    ['allow:phone:+8613900139000'],
  );
  assert.deepEqual(titled.rejected, []);
});

test('the command prints the bulk JSON, reports bad rows with reasons, and exits 1 on any', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'allowlist-'));
  try {
    const csv = path.join(dir, 'staff.csv');
    writeFileSync(csv, HR_EXPORT);
    const script = fileURLToPath(new URL('../../scripts/allowlist-csv.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [script, csv], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), allowlistEntries(HR_EXPORT).entries);
    assert.match(r.stderr, /line 8: no country code.*"9123 4567"/);
    writeFileSync(csv, '手机号\n13800138000\n');
    const clean = spawnSync(process.execPath, [script, csv], { encoding: 'utf8' });
    assert.equal(clean.status, 0, clean.stderr);
    assert.deepEqual(JSON.parse(clean.stdout), [{ key: 'allow:phone:+8613800138000', value: '1' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Needs the worker built (scripts/build) with its E.164 allowlist lookup.
test(
  'imported staff can bind their phones, in any country; the same digits elsewhere cannot',
  { skip: !built() && 'build/index.js is missing: run scripts/build first' },
  async () => {
    const stack = await startStack({ vars: { PHONE_ALLOWLIST: 'true' } });
    try {
      for (const e of allowlistEntries(HR_EXPORT).entries) await stack.kv.put(e.key, e.value);
      const bindCode = async (user, code) => {
        const t = await login(stack, `${user}.1`);
        return call(stack, 'POST', '/auth/phone', { headers: bearer(t.access_token), body: { code } });
      };
      // The legacy path carries the country code of a foreign number.
      const bindLegacy = async (user, phone, countryCode) => {
        const t = await login(stack, `${user}.1`);
        const body = stack.sim.encryptPhone({ user, phone, countryCode });
        return call(stack, 'POST', '/auth/phone', { headers: bearer(t.access_token), body });
      };
      const allowed = (r) => assert.equal(r.status, 200, r.text);
      const refused = (r) => {
        assert.equal(r.status, 403, r.text);
        assert.equal(r.json.error, 'not_internal_user');
      };

      allowed(await bindCode('lisi', 'phone-13900139000'));
      allowed(await bindLegacy('dana', '3105551234', '1'));
      allowed(await bindLegacy('chan', '91234567', '852'));
      // The digits the old import made of Dana's number, as a mainland mobile.
      refused(await bindCode('stranger', 'phone-13105551234'));
      // The Hong Kong entry's digits in Singapore.
      refused(await bindLegacy('sgstranger', '91234567', '65'));
      refused(await bindCode('outsider', 'phone-13700137000'));
    } finally {
      await stack.close();
    }
  },
);
