#!/usr/bin/env node
// Turns a staff list (CSV, as an HR export gives it) into the JSON that
// `wrangler kv bulk put` takes, one `allow:phone:{E.164 number}` key per
// phone (`allow:phone:+8613800138000`): the worker looks up
// `+{countryCode}{purePhoneNumber}` of the phone WeChat reports.
//
//   node scripts/allowlist-csv.mjs staff.csv > staff-kv.json
//   npx wrangler kv bulk put staff-kv.json --binding SESSIONS --remote
//
// The phone column is the one whose header is phone / mobile / 手机 / 手机号 /
// 电话 (any case), else the first column (then the first row is a header
// only if its first cell has no digits). A number is written with its
// country code, `+852 9123 4567` or `00852 9123 4567`; spaces, dashes,
// parentheses and dots may separate the digits, and full-width characters
// are read as their ASCII forms. Only an 11-digit mainland China mobile
// (1[3-9]…) may come without one: it is +86. Anything else (a bare
// `91234567`: Hong Kong or Singapore?) is reported on stderr with the reason
// and skipped (exit 1 if any). The same phone spelled twice is imported
// once. The value stored is the row's name column (name / 姓名) or "1".
import { readFileSync } from 'node:fs';

export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => r.some((f) => f.trim() !== ''));
}

/** A mainland China mobile, the only number that may come without a country code. */
const MAINLAND_MOBILE = /^1[3-9]\d{9}$/;
/** What may separate the digits: spaces, dashes (ASCII and typographic), parentheses, dots. */
const SEPARATORS = /[\s\-\u2010-\u2015().]/g;

/**
 * A phone as people write it → `{ e164: '+8613800138000' }`, or `{ error }`
 * saying why it cannot be imported.
 */
export function parsePhone(raw) {
  const text = String(raw ?? '')
    .normalize('NFKC')
    .trim();
  if (!text) return { error: 'no phone number' };
  // "+44 (0)20 7946 0000": the (0) is the national trunk prefix, not dialled after a country code.
  const p = text.replace(/^(\+|00)(\d{1,3})[\s\-.]*\(0\)/, '$1$2').replace(SEPARATORS, '');
  let digits;
  if (p.startsWith('+')) digits = p.slice(1);
  else if (p.startsWith('00')) digits = p.slice(2);
  else if (MAINLAND_MOBILE.test(p)) return { e164: `+86${p}` };
  else if (/^\d+$/.test(p)) {
    return { error: 'no country code: write it as +<country code> <number> (only a mainland mobile may omit +86)' };
  } else return { error: 'not a phone number' };
  // Country codes start with 1-9; E.164 allows at most 15 digits.
  if (!/^[1-9]\d{6,14}$/.test(digits)) return { error: 'not a phone number' };
  // No other country code starts with 86, and WeChat's mainland numbers are mobiles.
  if (digits.startsWith('86') && !MAINLAND_MOBILE.test(digits.slice(2))) {
    return { error: '+86 but not an 11-digit mainland mobile number' };
  }
  return { e164: `+${digits}` };
}

/** The E.164 form of a phone (`+8613800138000`), or null when it cannot be imported. */
export function normalisePhone(raw) {
  return parsePhone(raw).e164 ?? null;
}

const PHONE_HEADERS = ['phone', 'mobile', 'phone number', '手机', '手机号', '手机号码', '电话'];
const NAME_HEADERS = ['name', '姓名', '名字'];

export function allowlistEntries(csvText) {
  const rows = parseCsv(csvText.replace(/^\uFEFF/, ''));
  if (rows.length === 0) return { entries: [], rejected: [] };
  const header = rows[0].map((h) => h.trim().toLowerCase());
  let phoneCol = header.findIndex((h) => PHONE_HEADERS.includes(h));
  const nameCol = header.findIndex((h) => NAME_HEADERS.includes(h));
  let body = rows.slice(1);
  if (phoneCol < 0) {
    phoneCol = 0;
    // No recognised header: the first row is a header only if its first cell
    // has no digits, so a bad number on the first line is reported, not skipped.
    if (/\d/.test((rows[0][0] ?? '').normalize('NFKC'))) body = rows;
  }
  const seen = new Set();
  const entries = [];
  const rejected = [];
  body.forEach((r, i) => {
    const value = r[phoneCol] ?? '';
    const phone = parsePhone(value);
    if (phone.error) {
      rejected.push({ line: i + (body === rows ? 1 : 2), value, reason: phone.error });
      return;
    }
    if (seen.has(phone.e164)) return;
    seen.add(phone.e164);
    const name = nameCol >= 0 ? (r[nameCol] ?? '').trim() : '';
    entries.push({ key: `allow:phone:${phone.e164}`, value: name || '1' });
  });
  return { entries, rejected };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node scripts/allowlist-csv.mjs staff.csv > staff-kv.json');
    process.exit(2);
  }
  const { entries, rejected } = allowlistEntries(readFileSync(file, 'utf8'));
  for (const r of rejected) console.error(`line ${r.line}: ${r.reason}: ${JSON.stringify(r.value)}`);
  process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
  console.error(`${entries.length} phone(s) ready for: npx wrangler kv bulk put <file> --binding SESSIONS --remote`);
  process.exit(rejected.length ? 1 : 0);
}
