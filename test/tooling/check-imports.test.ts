import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { checkImports, type ImportRule, parseImports } from '../../scripts/check-imports.ts'

const SCRIPT = join(import.meta.dirname, '../../scripts/check-imports.ts')
const REPO = join(import.meta.dirname, '../..')

type Files = Record<string, string>

const json = (v: unknown) => JSON.stringify(v, null, 2)

/** A miniature of the repository that breaks no rule. */
const BASE: Files = {
  'package.json': json({
    name: 'root',
    private: true,
    workspaces: ['workload-api-client', 'certs', 'sidecar'],
    devDependencies: { tap: '21.8.0' },
  }),
  'workload-api-client/package.json': json({
    name: 'workload-api-client',
    exports: { '.': './src/index.ts', './wire': './src/wire/index.ts' },
    dependencies: { '@grpc/grpc-js': '1.14.7' },
  }),
  'workload-api-client/src/index.ts': "export * from './spiffe-id.ts'\nexport * from './client.ts'\n",
  'workload-api-client/src/spiffe-id.ts': 'export class SpiffeId {}\n',
  'workload-api-client/src/client.ts': [
    "import { connect } from 'node:net'",
    "import * as grpc from '@grpc/grpc-js'",
    "import type { SpiffeId } from './spiffe-id.ts'",
    'export { connect, grpc }',
    'export type { SpiffeId }',
  ].join('\n'),
  'workload-api-client/src/wire/index.ts': "export { SpiffeId } from '../spiffe-id.ts'\n",
  'workload-api-client/test/client.test.ts': [
    "import t from 'tap'",
    "import { DevJwtIssuer } from '@svidecar/certs'",
    "import { SpiffeId } from '../src/index.ts'",
    't.ok([DevJwtIssuer, SpiffeId])',
  ].join('\n'),
  'certs/package.json': json({
    name: '@svidecar/certs',
    exports: { '.': './src/index.ts' },
    dependencies: { '@grpc/grpc-js': '1.14.7', 'node-forge': '1.4.3', 'workload-api-client': '0.1.0' },
  }),
  'certs/src/index.ts': [
    "import forge from 'node-forge'",
    "import { SpiffeId } from 'workload-api-client'",
    "import * as wire from 'workload-api-client/wire'",
    'export class DevJwtIssuer {}',
    'export { forge, SpiffeId, wire }',
  ].join('\n'),
  'sidecar/package.json': json({
    name: 'svidecar',
    exports: { '.': './src/index.ts' },
    dependencies: { 'workload-api-client': '0.1.0', '@svidecar/certs': '0.1.0', undici: '8.0.0' },
  }),
  'sidecar/src/index.ts':
    "import { Pool } from 'undici'\nimport { SpiffeId } from 'workload-api-client'\nexport { Pool, SpiffeId }\n",
  'sidecar/src/cli/demo.ts': "export { DevJwtIssuer } from '@svidecar/certs'\n",
  'sidecar/src/dev/server.ts': "export * from '@svidecar/certs'\n",
  'sidecar/test/index.test.ts': "import 'tap'\nimport 'undici'\nimport 'svidecar'\n",
  'test/e2e.test.ts':
    "import 'tap'\nimport 'svidecar'\nimport 'workload-api-client/wire'\nimport './helper.ts'\n",
  'test/helper.ts': "import '@svidecar/certs'\n",
  'bench/package.json': json({ name: 'bench', private: true, dependencies: { 'workload-api-client': '*' } }),
  'bench/micro.ts': "import { SpiffeId } from 'workload-api-client'\nconsole.log(SpiffeId)\n",
  'scripts/tool.ts': "import { readFileSync } from 'node:fs'\nconsole.log(readFileSync)\n",
  // Never scanned: dependencies and build output.
  'sidecar/node_modules/x/index.ts': "import '../../../../escape.ts'\n",
  'certs/dist/index.ts': "import 'nowhere'\n",
}

/** tap's testdir wants nested objects; the cases read better as flat paths. */
interface Dir {
  [name: string]: string | Dir
}
function tree(files: Files): Dir {
  const root: Dir = {}
  for (const [path, content] of Object.entries(files)) {
    const parts = path.split('/')
    let dir = root
    for (const p of parts.slice(0, -1)) {
      dir[p] ??= {}
      dir = dir[p] as Dir
    }
    dir[parts.at(-1) as string] = content
  }
  return root
}

function runCli(root: string) {
  return spawnSync(process.execPath, [SCRIPT, root], { encoding: 'utf8' })
}

t.test('a tree that follows every rule passes, and dist/node_modules are not scanned', async (t) => {
  const dir = t.testdir(tree(BASE))
  const result = checkImports(dir)
  t.same(result.violations, [])
  t.equal(result.files, 14)
  const cli = runCli(dir)
  t.equal(cli.status, 0)
  t.equal(cli.stdout, 'imports ok (14 files)\n')
})

interface Case {
  readonly name: string
  readonly files: Files
  /** [file, line, rule] of every expected violation, in report order. */
  readonly expect: Array<[string, number, ImportRule]>
}

const CASES: Case[] = [
  {
    name: '(a) workload-api-client/src imports only node:, @grpc/grpc-js, @bufbuild/protobuf and its own files; undici only in src/undici.ts',
    files: {
      'workload-api-client/package.json': json({
        name: 'workload-api-client',
        exports: { '.': './src/index.ts', './wire': './src/wire/index.ts' },
        dependencies: { '@grpc/grpc-js': '1.14.7', undici: '8.0.0' },
      }),
      'workload-api-client/src/bad.ts':
        "import 'undici'\nimport '@svidecar/certs'\nimport '@grpc/grpc-js/build/src/x'\n",
    },
    expect: [
      // The optional peer dependency, outside the one entry point that may load it.
      ['workload-api-client/src/bad.ts', 1, 'DEV_ONLY_IMPORT'],
      ['workload-api-client/src/bad.ts', 2, 'SRC_FORBIDDEN'],
    ],
  },
  {
    name: '(b) certs/src imports only node:, workload-api-client, @grpc/grpc-js, node-forge, own files',
    files: {
      'certs/src/bad.ts': "import 'svidecar'\nimport 'node:crypto'\nimport 'workload-api-client/wire'\n",
    },
    expect: [['certs/src/bad.ts', 1, 'SRC_FORBIDDEN']],
  },
  {
    name: 'subpaths of a workspace package must be in its exports map',
    files: {
      'certs/src/deep.ts': "import 'workload-api-client/src/spiffe-id.ts'\n",
      'test/deep.test.ts': "import '@svidecar/certs/src/index.ts'\n",
    },
    expect: [
      ['certs/src/deep.ts', 1, 'NOT_EXPORTED'],
      ['test/deep.test.ts', 1, 'NOT_EXPORTED'],
    ],
  },
  {
    name: '(c) sidecar/src imports @svidecar/certs only from cli/demo.ts and dev/',
    files: {
      'sidecar/src/proxy.ts': "import { x } from '@svidecar/certs'\n",
      'sidecar/src/cli/policy.ts': "\nexport * from '@svidecar/certs'\n",
      'sidecar/src/devtools.ts': "import('@svidecar/certs')\n",
      'sidecar/src/dev/nested/ok.ts': "import '@svidecar/certs'\n",
      'sidecar/src/ws.ts': "import 'ws'\n",
    },
    expect: [
      ['sidecar/src/cli/policy.ts', 2, 'DEV_ONLY_IMPORT'],
      ['sidecar/src/devtools.ts', 1, 'DEV_ONLY_IMPORT'],
      ['sidecar/src/proxy.ts', 1, 'DEV_ONLY_IMPORT'],
      ['sidecar/src/ws.ts', 1, 'UNDECLARED'],
    ],
  },
  {
    name: '(d) a relative import never leaves its package',
    files: {
      'certs/src/escape.ts': "import '../../workload-api-client/src/spiffe-id.ts'\n",
      'test/escape.test.ts': "import '../certs/src/index.ts'\n",
      'bench/escape.ts': "import '../scripts/tool.ts'\n",
      'scripts/outside.ts': "import '../../elsewhere.ts'\n",
    },
    expect: [
      ['bench/escape.ts', 1, 'ESCAPES_PACKAGE'],
      ['certs/src/escape.ts', 1, 'ESCAPES_PACKAGE'],
      ['scripts/outside.ts', 1, 'ESCAPES_PACKAGE'],
      ['test/escape.test.ts', 1, 'ESCAPES_PACKAGE'],
    ],
  },
  {
    name: 'a source file never imports its package tests',
    files: {
      'workload-api-client/test/helper.ts': 'export const x = 1\n',
      'workload-api-client/src/uses-test.ts': "import { x } from '../test/helper.ts'\nexport { x }\n",
    },
    expect: [['workload-api-client/src/uses-test.ts', 1, 'SRC_IMPORTS_NON_SRC']],
  },
  {
    name: '(e) tests import what their package or the root declares, plus @svidecar/certs',
    files: {
      'certs/test/a.test.ts':
        "import 'tap'\nimport 'node-forge'\nimport '@svidecar/certs'\nimport 'undici'\n",
      'workload-api-client/test/b.test.ts': "import 'svidecar'\n",
      'test/c.test.ts': "import 'chai'\n",
    },
    expect: [
      ['certs/test/a.test.ts', 4, 'UNDECLARED'],
      ['test/c.test.ts', 1, 'UNDECLARED'],
      ['workload-api-client/test/b.test.ts', 1, 'UNDECLARED'],
    ],
  },
  {
    name: '(f) every bare import is declared by the importing package (root for test/scripts)',
    files: {
      'scripts/gen.ts': "import YAML from 'yaml'\nimport 'svidecar'\n",
      'bench/other.ts': "import 'mitata'\nimport '@svidecar/certs'\n",
      'sidecar/bin/cli.ts': "import 'tap'\n",
    },
    expect: [
      ['bench/other.ts', 1, 'UNDECLARED'],
      ['bench/other.ts', 2, 'UNDECLARED'],
      ['scripts/gen.ts', 1, 'UNDECLARED'],
      ['sidecar/bin/cli.ts', 1, 'UNDECLARED'],
    ],
  },
  {
    name: '(h) relative imports name the .ts file, and must exist',
    files: {
      'workload-api-client/src/ext.ts': [
        "import { SpiffeId } from './spiffe-id'",
        "import './spiffe-id.js'",
        "export * from './index'",
        "import './gone.ts'",
      ].join('\n'),
    },
    expect: [
      ['workload-api-client/src/ext.ts', 1, 'MISSING_TS_EXTENSION'],
      ['workload-api-client/src/ext.ts', 2, 'MISSING_TS_EXTENSION'],
      ['workload-api-client/src/ext.ts', 3, 'MISSING_TS_EXTENSION'],
      ['workload-api-client/src/ext.ts', 4, 'UNRESOLVED'],
    ],
  },
  {
    name: 'built-ins use the node: prefix and must exist',
    files: {
      'scripts/builtins.ts': "import 'fs'\nimport 'node:nope'\nimport 'node:test'\nimport '#internal'\n",
    },
    expect: [
      ['scripts/builtins.ts', 1, 'BARE_BUILTIN'],
      ['scripts/builtins.ts', 2, 'UNKNOWN_BUILTIN'],
      ['scripts/builtins.ts', 4, 'BAD_SPECIFIER'],
    ],
  },
]

t.test('each rule reports file, line and rule', async (t) => {
  for (const c of CASES) {
    t.test(c.name, async (t) => {
      const dir = t.testdir(tree({ ...BASE, ...c.files }))
      const got = checkImports(dir).violations.map((v) => [v.file, v.line, v.rule])
      t.same(got, c.expect)
    })
  }
})

t.test('(g) an import cycle among src files is reported once, with its path', async (t) => {
  const dir = t.testdir(
    tree({
      ...BASE,
      'workload-api-client/src/a.ts': "import { b } from './b.ts'\nexport const a = b\n",
      'workload-api-client/src/b.ts': "\nimport type { C } from './c.ts'\nexport const b = 1\n",
      'workload-api-client/src/c.ts': "import { a } from './a.ts'\nexport type C = typeof a\n",
      'sidecar/src/self.ts': "export * from './self.ts'\n",
      // Test files may import each other in circles: only src is checked.
      'certs/test/x.test.ts': "import './y.test.ts'\n",
      'certs/test/y.test.ts': "import './x.test.ts'\n",
    }),
  )
  const cycles = checkImports(dir).violations.map((v) => [v.file, v.line, v.rule, v.cycle])
  t.same(cycles, [
    ['sidecar/src/self.ts', 1, 'CYCLE', ['sidecar/src/self.ts', 'sidecar/src/self.ts']],
    [
      'workload-api-client/src/c.ts',
      1,
      'CYCLE',
      [
        'workload-api-client/src/a.ts',
        'workload-api-client/src/b.ts',
        'workload-api-client/src/c.ts',
        'workload-api-client/src/a.ts',
      ],
    ],
  ])
})

t.test('the CLI prints file:line: message per violation and exits 1', async (t) => {
  const dir = t.testdir(
    tree({ ...BASE, 'certs/src/bad.ts': "\n\nimport 'svidecar'\n", 'scripts/x.ts': "import 'fs'\n" }),
  )
  const cli = runCli(dir)
  t.equal(cli.status, 1)
  const lines = cli.stdout.trimEnd().split('\n')
  t.equal(lines.length, 2)
  t.match(lines[0], /^certs\/src\/bad\.ts:3: \S/)
  t.match(lines[1], /^scripts\/x\.ts:1: \S/)
})

t.test('parseImports finds every import form and ignores look-alikes', async (t) => {
  const source = [
    "import a from './a.ts'", // 1
    "import type { B } from './b.ts'", // 2
    'import {', // 3
    '  c,',
    '  d as e,',
    "} from './c.ts'", // 6
    "import * as f from 'f'", // 7
    "import 'side-effect'", // 8
    "export * from './g.ts'", // 9
    "export * as h from './h.ts'", // 10
    "export { i, type J } from './i.ts'", // 11
    "const k = await import('./k.ts')", // 12
    "// import x from './commented.ts'", // 13
    "/* export * from './block.ts'", // 14
    "   import './block2.ts' */", // 15
    'const s = "import x from \'./in-string.ts\'"', // 16
    // biome-ignore lint/suspicious/noTemplateCurlyInString: source text under test, not a template
    "const tpl = `import y from './in-template.ts' ${import('./in-placeholder.ts')}`", // 17
    "const re = /import z from '.\\/in-regex.ts'/", // 18
    "obj.import('./method.ts')", // 19
    "export const from = 'not-an-import'", // 20
    "const n = 1 / 2; import l from './after-division.ts'", // 21
    'import m, { n2 } from "./double.ts"', // 22
    "export default x\nimport o from './o.ts'", // 23, 24
  ].join('\n')
  t.same(
    parseImports(source).map((r) => [r.specifier, r.line, r.kind]),
    [
      ['./a.ts', 1, 'static'],
      ['./b.ts', 2, 'static'],
      ['./c.ts', 6, 'static'],
      ['f', 7, 'static'],
      ['side-effect', 8, 'static'],
      ['./g.ts', 9, 'static'],
      ['./h.ts', 10, 'static'],
      ['./i.ts', 11, 'static'],
      ['./k.ts', 12, 'dynamic'],
      ['./in-placeholder.ts', 17, 'dynamic'],
      ['./after-division.ts', 21, 'static'],
      ['./double.ts', 22, 'static'],
      ['./o.ts', 24, 'static'],
    ],
  )
})

t.test('the repository itself follows the rules', async (t) => {
  const { files, violations } = checkImports(REPO)
  t.ok(files > 0)
  t.same(
    violations.map((v) => `${v.file}:${v.line}: ${v.message}`),
    [],
  )
})
