// Lists the sections of a wasm file and their sizes (custom sections by
// name), to see e.g. how much of build/index_bg.wasm is the `name` section.
//   node bench/wasm-sections.mjs build/index_bg.wasm [--has-names]
// With --has-names: prints nothing, exits 0 if a `name` section is present, 1 if not.
import { readFileSync } from 'node:fs'

const [file, flag] = process.argv.slice(2)
if (!file) {
  console.error('usage: node bench/wasm-sections.mjs FILE.wasm [--has-names]')
  process.exit(2)
}
const b = readFileSync(file)
if (b.readUInt32BE(0) !== 0x0061736d) throw new Error(`${file} is not a wasm module`)
const KINDS = ['custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export', 'start', 'element', 'code', 'data', 'datacount', 'tag']
let p = 8
const leb = () => {
  let r = 0
  let shift = 0
  let x
  do {
    x = b[p++]
    r += (x & 0x7f) * 2 ** shift
    shift += 7
  } while (x & 0x80)
  return r
}
const sections = []
while (p < b.length) {
  const id = b[p++]
  const size = leb()
  const start = p
  let name = KINDS[id] ?? `section ${id}`
  if (id === 0) {
    const n = leb()
    name = `custom "${b.subarray(p, p + n).toString()}"`
  }
  sections.push({ name, size })
  p = start + size
}
if (flag === '--has-names') process.exit(sections.some((s) => s.name === 'custom "name"') ? 0 : 1)
console.log(`${file}: ${b.length.toLocaleString('en-US')} bytes`)
for (const s of sections) {
  console.log(`  ${s.name.padEnd(26)} ${s.size.toLocaleString('en-US').padStart(10)}  ${((100 * s.size) / b.length).toFixed(1).padStart(5)} %`)
}
