// The committed codec is what protoc-gen-es makes of proto/workload.proto today:
// regenerate with the pinned buf and plugin into a temporary directory and compare.
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

const pkg = join(import.meta.dirname, '..')
const bin = join(pkg, '..', 'node_modules', '.bin')
const committed = join(pkg, 'src', 'internal', 'gen')

t.test('src/internal/gen matches a fresh `npm run generate` (buf.gen.yaml)', async (t) => {
  const out = t.testdir()
  // buf finds the local protoc-gen-es plugin on PATH, as `npm run generate` puts it there.
  await promisify(execFile)(join(bin, 'buf'), ['generate', '--template', 'buf.gen.yaml', '--output', out], {
    cwd: pkg,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
  })
  const fresh = join(out, 'src', 'internal', 'gen')
  const names = readdirSync(committed).sort()
  t.same(readdirSync(fresh).sort(), names, 'the same files')
  for (const name of names) {
    t.equal(
      readFileSync(join(committed, name), 'utf8'),
      readFileSync(join(fresh, name), 'utf8'),
      `${name} is up to date: run \`npm run generate -w workload-api-client\` and commit`,
    )
  }
})

t.test('the generated code is erasable TypeScript that relative-imports .ts files', async (t) => {
  for (const name of readdirSync(committed)) {
    const source = readFileSync(join(committed, name), 'utf8')
    t.notMatch(
      source,
      /^\s*(export\s+)?(declare\s+)?(const\s+)?(enum|namespace)\s/m,
      `${name}: no enum or namespace`,
    )
    for (const [, spec] of source.matchAll(/from\s+"(\.[^"]*)"/g)) t.match(spec, /\.ts$/, `${name}: ${spec}`)
  }
})
