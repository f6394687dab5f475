#!/usr/bin/env node
// Turns a staff list (CSV, as an HR export gives it) into the JSON that
// `wrangler kv bulk put` takes, one `allow:phone:{number}` key per phone.
//
//   node scripts/allowlist-csv.mjs staff.csv > staff-kv.json
//   npx wrangler kv bulk put staff-kv.json --binding SESSIONS --remote
//
// The phone column is the one whose header is phone / mobile / 手机 / 手机号 /
// 电话 (any case), else the first column. Numbers are normalised the way
// WeChat's purePhoneNumber is: digits only, without +86 / 0086. Rows whose
// phone is not 5–15 digits are reported on stderr and skipped (exit 1 if
// any). The value stored is the row's name column (name / 姓名) or "1".
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

export function normalisePhone(raw) {
  let p = String(raw).replace(/[\s\-().]/g, '');
  if (p.startsWith('+86')) p = p.slice(3);
  else if (p.startsWith('0086')) p = p.slice(4);
  else if (p.startsWith('+')) p = p.slice(1);
  return /^\d{5,15}$/.test(p) ? p : null;
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
    // No recognised header: the first row is data if it holds a phone.
    if (normalisePhone(rows[0][0] ?? '')) body = rows;
  }
  const seen = new Set();
  const entries = [];
  const rejected = [];
  body.forEach((r, i) => {
    const phone = normalisePhone(r[phoneCol] ?? '');
    if (!phone) {
      rejected.push({ line: i + (body === rows ? 1 : 2), value: r[phoneCol] ?? '' });
      return;
    }
    if (seen.has(phone)) return;
    seen.add(phone);
    const name = nameCol >= 0 ? (r[nameCol] ?? '').trim() : '';
    entries.push({ key: `allow:phone:${phone}`, value: name || '1' });
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
  for (const r of rejected) console.error(`line ${r.line}: not a phone number: ${JSON.stringify(r.value)}`);
  process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
  console.error(`${entries.length} phone(s) ready for: npx wrangler kv bulk put <file> --binding SESSIONS --remote`);
  process.exit(rejected.length ? 1 : 0);
}
