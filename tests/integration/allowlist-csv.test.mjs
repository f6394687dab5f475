// The operator's CSV import: from an HR export to KV keys the worker's
// allowlist reads, then a staff member binds their phone through the worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allowlistEntries, normalisePhone } from '../../scripts/allowlist-csv.mjs';
import { startStack, login, call, bearer } from '../support/stack.mjs';

const HR_EXPORT =
  '\uFEFF姓名,部门,手机号\r\n张三,培训部,138 0013 8000\r\n"李四, Jr.",IT,+86-139-0013-9000\r\n王五,HR,not-a-phone\r\n张三,培训部,13800138000\r\n';

test('normalises phones the way purePhoneNumber is written', () => {
  assert.equal(normalisePhone('+86 138-0013-8000'), '13800138000');
  assert.equal(normalisePhone('0086 13800138000'), '13800138000');
  assert.equal(normalisePhone('(415) 555-0123'), '4155550123');
  assert.equal(normalisePhone('call me'), null);
  assert.equal(normalisePhone('123'), null);
});

test('an HR export becomes allow:phone keys, with bad rows reported and duplicates dropped', () => {
  const { entries, rejected } = allowlistEntries(HR_EXPORT);
  assert.deepEqual(entries, [
    { key: 'allow:phone:13800138000', value: '张三' },
    { key: 'allow:phone:13900139000', value: '李四, Jr.' },
  ]);
  assert.deepEqual(rejected, [{ line: 4, value: 'not-a-phone' }]);
});

test('a headerless single-column list works too', () => {
  const { entries } = allowlistEntries('13800138000\n13900139000\n');
  assert.deepEqual(
    entries.map((e) => e.key),
    ['allow:phone:13800138000', 'allow:phone:13900139000'],
  );
});

test('imported staff can bind their phone; others cannot', async () => {
  const stack = await startStack({ vars: { PHONE_ALLOWLIST: 'true' } });
  try {
    for (const e of allowlistEntries(HR_EXPORT).entries) await stack.kv.put(e.key, e.value);
    const staff = await login(stack, 'staffer.1');
    const ok = await call(stack, 'POST', '/auth/phone', {
      headers: bearer(staff.access_token),
      body: { code: 'phone-13900139000' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.purePhoneNumber, '13900139000');
    const outsider = await login(stack, 'outsider.1');
    const no = await call(stack, 'POST', '/auth/phone', {
      headers: bearer(outsider.access_token),
      body: { code: 'phone-13700137000' },
    });
    assert.equal(no.status, 403);
    assert.equal(no.json.error, 'not_internal_user');
  } finally {
    await stack.close();
  }
});
