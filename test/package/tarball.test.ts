// The published workload-api-client as a user gets it: its `npm pack` tarball, installed into an empty project on every
// Node major the `engines` range supports, running the README's examples by package name (the compiled dist/,
// no repository condition) against the dev Workload API, and type-checking them against the shipped declarations.
import { execFile } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DevWorkloadApi } from '@svidecar/certs'
import t from 'tap'
import { nodeBinary } from '../harness/node-versions.ts'

const run = promisify(execFile)
const root = join(import.meta.dirname, '..', '..')
const pkgDir = join(root, 'workload-api-client')
const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as {
  version: string
  engines: { node: string }
  devDependencies: Record<string, string>
}

// The majors `engines` admits that are maintained: 22 and 24 (odd majors are never LTS).
const MAJORS = [22, 24]

t.test('engines admits Node 22 on (the 22.12 floor: require(esm) and X509Certificate dates)', async (t) => {
  t.equal(manifest.engines.node, '>=22.12')
})

// Built and packed from a private copy: the repository's own dist/ may be rebuilt by another suite meanwhile
// (test/deploy runs `tsc -b`), and a test must not write into the package it checks. The copy sits under
// .tap/fixtures, inside the repository, so the compiler finds the root node_modules for @types and deps.
const work = t.testdir({ pack: {} })
const copy = join(work, 'workload-api-client')
copyFileSync(join(root, 'tsconfig.base.json'), join(work, 'tsconfig.base.json'))
for (const entry of [
  'package.json',
  'README.md',
  'CHANGELOG.md',
  'LICENSE',
  'tsconfig.json',
  'proto',
  'src',
]) {
  cpSync(join(pkgDir, entry), join(copy, entry), { recursive: true })
}
await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', copy], {
  timeout: 300_000,
})
const packDir = join(work, 'pack')
// --ignore-scripts: prepack's `tsc -b` already ran above, on the copy.
const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], {
  cwd: copy,
  timeout: 300_000,
  maxBuffer: 16 * 1024 * 1024,
})
const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }]
const tarball = join(packDir, info.filename)

t.test('the tarball ships the compiled library, its docs and the .proto, nothing else', async (t) => {
  const files = info.files.map((f) => f.path).sort()
  const allowed = (p: string) =>
    /^dist\/.+\.(js|d\.ts)$/.test(p) ||
    /^proto\/.+\.proto$/.test(p) ||
    ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE'].includes(p)
  t.same(
    files.filter((p) => !allowed(p)),
    [],
    'no sources, tests, examples, maps, build info or API reports',
  )
  for (const needed of [
    'dist/index.js',
    'dist/index.d.ts',
    'dist/wire.js',
    'dist/undici.js',
    'dist/tls/server.js',
    'README.md',
    'CHANGELOG.md',
    'LICENSE',
  ]) {
    t.ok(files.includes(needed), `ships ${needed}`)
  }
})

const api = await DevWorkloadApi.start({
  workloads: [
    { spiffeId: 'spiffe://example.org/quickstart' },
    { spiffeId: 'spiffe://example.org/api' },
    { spiffeId: 'spiffe://example.org/client' },
  ],
})
t.teardown(() => api.close())

for (const major of MAJORS) {
  t.test(`Node ${major}: installs from the tarball and runs the README examples`, async (t) => {
    const node = await nodeBinary(major)
    const version = (await run(node, ['--version'])).stdout.trim()
    t.match(version, new RegExp(`^v${major}\\.`), `node@${major} is ${version}`)
    const project = t.testdir({
      'package.json': JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    })
    // The optional peer (undici) at the version the repository tests with.
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        tarball,
        `undici@${manifest.devDependencies.undici}`,
      ],
      { cwd: project, timeout: 300_000 },
    )
    for (const example of ['quickstart.ts', 'mtls.ts']) {
      copyFileSync(join(pkgDir, 'examples', example), join(project, example))
    }
    writeFileSync(join(project, 'resolve.mjs'), "console.log(import.meta.resolve('workload-api-client'))\n")
    const resolved = (await run(node, ['resolve.mjs'], { cwd: project })).stdout.trim()
    t.match(
      resolved,
      /\/node_modules\/workload-api-client\/dist\/index\.js$/,
      'resolves to the compiled dist/',
    )

    const env = { ...process.env, SPIFFE_ENDPOINT_SOCKET: api.endpoint }
    // No flag: Node 22.18+ and 24 strip the (erasable) types of a .ts file by default.
    const quick = await run(node, ['quickstart.ts'], { cwd: project, env, timeout: 60_000 })
    t.match(quick.stdout, /^I am spiffe:\/\/example\.org\/quickstart, certificate valid until \d{4}-/m)
    t.match(quick.stdout, /^peer spiffe:\/\/example\.org\/quickstart is a member of example\.org$/m)
    const mtls = await run(node, ['mtls.ts'], { cwd: project, env, timeout: 60_000 })
    t.equal(mtls.stdout, '200 hello spiffe://example.org/client\n')

    // The same example with Node's own global fetch (its bundled undici), which the README promises too.
    const example = readFileSync(join(project, 'mtls.ts'), 'utf8')
    const importLine = "import { fetch } from 'undici'\n"
    t.ok(example.includes(importLine), 'the example imports fetch from undici')
    writeFileSync(join(project, 'mtls-global-fetch.ts'), example.replace(importLine, ''))
    const global = await run(node, ['mtls-global-fetch.ts'], { cwd: project, env, timeout: 60_000 })
    t.equal(global.stdout, '200 hello spiffe://example.org/client\n', "through Node's global fetch")

    // A TypeScript user's view: the examples type-check against the shipped declarations alone (no
    // repository condition, nothing skipped), under the resolution Node itself uses: once with the
    // repository's @types/node, once with the one a plain install of the tarball brings along (a
    // dependency of a dependency pulls the newest), which is what a user who adds none compiles with.
    // The third entry point, for Workload API servers, has no example; one import stands for it.
    writeFileSync(
      join(project, 'wire.ts'),
      "import { methodPath, WORKLOAD_API_SERVICE } from 'workload-api-client/wire'\nconsole.log(WORKLOAD_API_SERVICE.FetchX509SVID.path, methodPath('FetchJWTSVID'))\n",
    )
    const installedTypes = join(project, 'node_modules', '@types')
    const typeRoots = [
      ['the repository', join(root, 'node_modules', '@types')],
      ...(existsSync(join(installedTypes, 'node')) ? [['the install', installedTypes]] : []),
    ]
    for (const [whose, typeRoot] of typeRoots) {
      writeFileSync(
        join(project, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            strict: true,
            noEmit: true,
            skipLibCheck: false,
            allowImportingTsExtensions: true,
            types: ['node'],
            typeRoots: [typeRoot],
          },
          // Not the global-fetch variant: @types/node types its `dispatcher` with its own copy of undici's
          // types, which undici 8's Agent does not match (the README tells TypeScript users to cast there).
          files: ['quickstart.ts', 'mtls.ts', 'wire.ts'],
        }),
      )
      const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
      const checked = await run(process.execPath, [tsc, '-p', project], {
        cwd: project,
        timeout: 300_000,
      }).then(
        () => '',
        (err: { stdout?: string }) => err.stdout ?? String(err),
      )
      t.equal(checked, '', `tsc --moduleResolution nodenext finds no error with @types/node of ${whose}`)
    }
  })
}
