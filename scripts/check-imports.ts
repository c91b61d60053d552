/**
 * Enforces the import rules of CONTRIBUTING.md ("Layout and imports") and
 * fails on circular imports between source files. Dependency-free on
 * purpose: it runs before `npm ci` has anything to offer beyond Node itself.
 *
 *   node scripts/check-imports.ts [rootDir]
 *
 * Prints `file:line: message` per violation and exits 1, or prints
 * `imports ok (N files)`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { isBuiltin } from 'node:module'
import { dirname, join, relative, resolve, sep } from 'node:path'

/** Stable names of the rules, one per kind of violation. */
export type ImportRule =
  | 'MISSING_TS_EXTENSION'
  | 'ESCAPES_PACKAGE'
  | 'UNRESOLVED'
  | 'SRC_IMPORTS_NON_SRC'
  | 'UNKNOWN_BUILTIN'
  | 'BARE_BUILTIN'
  | 'BAD_SPECIFIER'
  | 'SRC_FORBIDDEN'
  | 'DEV_ONLY_IMPORT'
  | 'UNDECLARED'
  | 'NOT_EXPORTED'
  | 'CYCLE'

export interface Violation {
  /** Path relative to the checked root, with `/` separators. */
  readonly file: string
  readonly line: number
  readonly rule: ImportRule
  readonly message: string
  /** For CYCLE: the files of the cycle, first file repeated at the end. */
  readonly cycle?: readonly string[]
}

export interface CheckResult {
  readonly files: number
  readonly violations: Violation[]
}

export interface ImportRef {
  readonly specifier: string
  readonly line: number
  readonly kind: 'static' | 'dynamic'
}

const SCAN_DIRS = ['workload-api-client', 'certs', 'sidecar', 'test', 'bench', 'scripts']
const SKIP_DIRS = new Set(['node_modules', 'dist'])

/**
 * What each package's `src/` may import besides node: built-ins and its own
 * files. `declared` stands for every dependency of the package's own
 * package.json; `except` lists package files (or folders, ending in `/`)
 * that alone may import a package the rest of `src/` must not.
 */
interface SrcRule {
  readonly allow: readonly string[] | 'declared'
  readonly deny?: Readonly<Record<string, { readonly except: readonly string[] }>>
}

const SRC_RULES: Readonly<Record<string, SrcRule>> = {
  'workload-api-client': {
    allow: ['@grpc/grpc-js', '@bufbuild/protobuf', 'undici'],
    // undici is an optional peer dependency: only the `workload-api-client/undici` entry point loads it.
    deny: { undici: { except: ['src/undici.ts'] } },
  },
  certs: { allow: ['workload-api-client', '@grpc/grpc-js', 'node-forge'] },
  sidecar: {
    allow: 'declared',
    deny: { '@svidecar/certs': { except: ['src/cli/demo.ts', 'src/dev/'] } },
  },
}

/** Test code may always reach for the dev PKI, whatever its package declares. */
const TEST_EXTRA = ['@svidecar/certs']

interface PackageInfo {
  /** Folder relative to the root with a trailing `/`; `''` for the root. */
  readonly dir: string
  readonly name: string | undefined
  readonly declared: ReadonlySet<string>
  /** Subpath export keys (`.`, `./wire`), or undefined when there is no exports map. */
  readonly exportKeys: ReadonlySet<string> | undefined
}

export function checkImports(rootDir: string): CheckResult {
  const root = resolve(rootDir)
  const packages = new Map<string, PackageInfo>()
  const packageAt = (dir: string): PackageInfo | undefined => {
    if (packages.has(dir)) return packages.get(dir)
    const info = readPackage(root, dir)
    if (info !== undefined) packages.set(dir, info)
    return info
  }
  const rootPkg = packageAt('') ?? { dir: '', name: undefined, declared: new Set(), exportKeys: undefined }
  const workspaces = new Map<string, PackageInfo>()
  for (const ws of readWorkspaces(root)) {
    const info = packageAt(`${ws}/`)
    if (info?.name !== undefined) workspaces.set(info.name, info)
  }

  const files = SCAN_DIRS.flatMap((d) => listTsFiles(root, d)).sort()
  const fileSet = new Set(files)
  const violations: Violation[] = []
  // Edges between src files, for the cycle check: file -> [target, line].
  const graph = new Map<string, Array<[string, number]>>()

  for (const file of files) {
    const pkg = owningPackage(file, packageAt) ?? rootPkg
    const inPkg = file.slice(pkg.dir.length)
    const isSrc = pkg.dir !== '' && inPkg.startsWith('src/')
    const isTest = file.endsWith('.test.ts') || inPkg.startsWith('test/')
    const report = (line: number, rule: ImportRule, message: string) =>
      violations.push({ file, line, rule, message })
    const edges: Array<[string, number]> = []

    for (const ref of parseImports(readFileSync(join(root, file), 'utf8'))) {
      const spec = ref.specifier
      if (spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..') {
        if (!spec.endsWith('.ts')) {
          report(ref.line, 'MISSING_TS_EXTENSION', `relative import '${spec}' must name the .ts file`)
          continue
        }
        const target = toPosix(relative(root, resolve(root, dirname(file), spec)))
        const targetPkg = target.startsWith('../') ? undefined : (owningPackage(target, packageAt) ?? rootPkg)
        // Test helpers are never published, so any test or benchmark may share a workspace's instead of copying them.
        const sharedHelper = (isTest || file.startsWith('bench/')) && /^[^/]+\/test\/helpers\//.test(target)
        if (targetPkg?.dir !== pkg.dir && !sharedHelper) {
          report(
            ref.line,
            'ESCAPES_PACKAGE',
            `relative import '${spec}' leaves package ${label(pkg)}; import it by package name`,
          )
          continue
        }
        if (!fileSet.has(target) && !existsSync(join(root, target))) {
          report(ref.line, 'UNRESOLVED', `relative import '${spec}' does not resolve to a file`)
          continue
        }
        if (isSrc && !target.startsWith(`${pkg.dir}src/`)) {
          report(ref.line, 'SRC_IMPORTS_NON_SRC', `source file imports '${spec}', outside ${pkg.dir}src/`)
          continue
        }
        if (isSrc) edges.push([target, ref.line])
        continue
      }
      if (spec.startsWith('node:')) {
        if (!isBuiltin(spec))
          report(ref.line, 'UNKNOWN_BUILTIN', `'${spec}' is not a Node.js built-in module`)
        continue
      }
      if (isBuiltin(spec)) {
        report(ref.line, 'BARE_BUILTIN', `built-in '${spec}' must be imported as 'node:${spec}'`)
        continue
      }
      if (spec.startsWith('#') || spec.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(spec)) {
        report(ref.line, 'BAD_SPECIFIER', `'${spec}' is neither relative, node: nor a package name`)
        continue
      }
      const name = packageName(spec)
      const subpath = spec === name ? '.' : `.${spec.slice(name.length)}`

      // Root-level files run from the workspace root, where npm links every workspace.
      const linked = pkg.dir === '' && workspaces.has(name)
      const declared = pkg.declared.has(name) || name === pkg.name || linked
      if (isSrc) {
        const rule = SRC_RULES[pkg.dir.slice(0, -1)]
        if (rule !== undefined) {
          const denied = rule.deny?.[name]
          if (denied !== undefined && !denied.except.some((e) => matchesPath(inPkg, e))) {
            report(
              ref.line,
              'DEV_ONLY_IMPORT',
              `${pkg.dir}src may import '${name}' only from ${denied.except.map((e) => pkg.dir + e).join(', ')}`,
            )
            continue
          }
          // `declared` leaves the verdict to the UNDECLARED check below.
          if (rule.allow !== 'declared' && !rule.allow.includes(name)) {
            report(
              ref.line,
              'SRC_FORBIDDEN',
              `${pkg.dir}src must not import '${name}' (${describeAllow(rule.allow)})`,
            )
            continue
          }
        }
      }
      const testOk = isTest && (rootPkg.declared.has(name) || TEST_EXTRA.includes(name))
      if (!declared && !testOk) {
        report(ref.line, 'UNDECLARED', `'${name}' is not declared in ${pkg.dir}package.json`)
        continue
      }
      const ws = workspaces.get(name)
      if (ws?.exportKeys !== undefined && !ws.exportKeys.has(subpath)) {
        report(
          ref.line,
          'NOT_EXPORTED',
          `'${spec}' is not exported by ${name} (exports: ${[...ws.exportKeys].join(', ')})`,
        )
      }
    }
    if (isSrc) graph.set(file, edges)
  }

  for (const cycle of findCycles(graph)) {
    violations.push({
      file: cycle.file,
      line: cycle.line,
      rule: 'CYCLE',
      cycle: cycle.path,
      message: `import cycle: ${cycle.path.join(' -> ')}`,
    })
  }
  violations.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1))
  return { files: files.length, violations }
}

function describeAllow(allow: readonly string[]): string {
  return `allowed: node: built-ins, ${allow.join(', ')}, its own files`
}

function matchesPath(inPkg: string, pattern: string): boolean {
  return pattern.endsWith('/') ? inPkg.startsWith(pattern) : inPkg === pattern
}

function label(pkg: PackageInfo): string {
  return pkg.dir === '' ? '(root)' : pkg.dir.slice(0, -1)
}

function packageName(spec: string): string {
  const parts = spec.split('/')
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string)
}

function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/')
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'))
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

function readPackage(root: string, dir: string): PackageInfo | undefined {
  const json = readJson(join(root, dir, 'package.json'))
  if (json === undefined) return undefined
  const declared = new Set<string>()
  for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
    const deps = json[field]
    if (typeof deps === 'object' && deps !== null) for (const k of Object.keys(deps)) declared.add(k)
  }
  let exportKeys: Set<string> | undefined
  const exp = json.exports
  if (typeof exp === 'object' && exp !== null && !Array.isArray(exp)) {
    const keys = Object.keys(exp)
    // A conditions-only map (`{ "import": ... }`) exports just the main entry.
    exportKeys = new Set(keys.some((k) => k.startsWith('.')) ? keys : ['.'])
  } else if (exp !== undefined) {
    exportKeys = new Set(['.'])
  }
  const name = typeof json.name === 'string' ? json.name : undefined
  return { dir, name, declared, exportKeys }
}

function readWorkspaces(root: string): string[] {
  const ws = readJson(join(root, 'package.json'))?.workspaces
  return Array.isArray(ws) ? ws.filter((w): w is string => typeof w === 'string') : []
}

/** The nearest package.json folder above `file` (relative, `/`-separated), or undefined for the root. */
function owningPackage(file: string, packageAt: (dir: string) => PackageInfo | undefined) {
  const parts = file.split('/')
  for (let n = parts.length - 1; n > 0; n--) {
    const pkg = packageAt(`${parts.slice(0, n).join('/')}/`)
    if (pkg !== undefined) return pkg
  }
  return undefined
}

function listTsFiles(root: string, dir: string): string[] {
  const out: string[] = []
  const walk = (rel: string) => {
    let entries: import('node:fs').Dirent[]
    try {
      entries = readdirSync(join(root, rel), { withFileTypes: true })
    } catch {
      return
    }
    for (const e of entries) {
      const path = `${rel}/${e.name}`
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.')) walk(path)
      } else if (e.isFile() && e.name.endsWith('.ts')) {
        out.push(path)
      }
    }
  }
  walk(dir)
  return out
}

/**
 * Imports of a TypeScript module: `import ... from '...'`, `import '...'`,
 * `export ... from '...'` and `import('...')` with a literal specifier.
 * Comments and the insides of strings, templates and regular expressions are
 * masked first, so text that merely looks like an import is never taken
 * for one.
 */
export function parseImports(source: string): ImportRef[] {
  const { masked, strings } = mask(source)
  const found = new Map<number, ImportRef['kind']>()
  // Matches end at the specifier's opening quote; its offset keys `strings`.
  const patterns: Array<[RegExp, ImportRef['kind']]> = [
    [/(?<![.\w$])(?:import|export)\s[\w$\s{},*]*?(?<![\w$])from\s*['"]/g, 'static'],
    [/(?<![.\w$])import\s*['"]/g, 'static'],
    [/(?<![.\w$])import\s*\(\s*['"]/g, 'dynamic'],
  ]
  for (const [re, kind] of patterns) {
    for (const m of masked.matchAll(re)) {
      const quote = m.index + m[0].length - 1
      if (strings.has(quote) && !found.has(quote)) found.set(quote, kind)
    }
  }
  const lineStarts = [0]
  for (let i = 0; i < source.length; i++) if (source.charCodeAt(i) === 10) lineStarts.push(i + 1)
  const lineOf = (offset: number) => {
    let lo = 0
    let hi = lineStarts.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if ((lineStarts[mid] as number) <= offset) lo = mid
      else hi = mid - 1
    }
    return lo + 1
  }
  return [...found]
    .sort((a, b) => a[0] - b[0])
    .map(([offset, kind]) => ({ specifier: strings.get(offset) as string, line: lineOf(offset), kind }))
}

// After these words a `/` starts a regular expression, not a division.
const REGEX_AFTER_WORD = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
])

/**
 * Replaces comments and the contents of string, template and regex literals
 * with spaces (newlines kept, so offsets and lines stay put) and records the
 * value of every plain string literal by the offset of its opening quote.
 */
function mask(src: string): { masked: string; strings: Map<number, string> } {
  const out = src.split('')
  const strings = new Map<number, string>()
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' '
  }
  // Brace depth at which each open `${` of a template resumes the template.
  const templateStack: number[] = []
  let depth = 0
  let lastSignificant = '' // last non-space code character, or the last word
  let i = 0
  const n = src.length

  const scanTemplate = (start: number): number => {
    // start is just after a backquote or a closing `}` of `${`.
    let k = start
    while (k < n) {
      const c = src[k]
      if (c === '\\') k += 2
      else if (c === '`') {
        blank(start, k)
        return k + 1
      } else if (c === '$' && src[k + 1] === '{') {
        blank(start, k)
        templateStack.push(depth)
        depth++
        return k + 2
      } else k++
    }
    blank(start, n)
    return n
  }

  while (i < n) {
    const c = src[i] as string
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i)
      const stop = end === -1 ? n : end
      blank(i, stop)
      i = stop
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2)
      const stop = end === -1 ? n : end + 2
      blank(i, stop)
      i = stop
    } else if (c === "'" || c === '"') {
      let k = i + 1
      let value = ''
      while (k < n && src[k] !== c && src[k] !== '\n') {
        if (src[k] === '\\') {
          value += src[k + 1] ?? ''
          k += 2
        } else value += src[k++]
      }
      strings.set(i, value)
      blank(i + 1, Math.min(k, n))
      i = k + 1
      lastSignificant = 'str'
    } else if (c === '`') {
      i = scanTemplate(i + 1)
      lastSignificant = 'str'
    } else if (c === '/') {
      const prev = lastSignificant
      const regexStart =
        prev === '' || REGEX_AFTER_WORD.has(prev) || (prev.length === 1 && !/[\w$)\]}]/.test(prev))
      if (regexStart) {
        let k = i + 1
        let inClass = false
        while (k < n && src[k] !== '\n') {
          const r = src[k]
          if (r === '\\') k += 2
          else if (r === '/' && !inClass) break
          else {
            if (r === '[') inClass = true
            else if (r === ']') inClass = false
            k++
          }
        }
        blank(i + 1, Math.min(k, n))
        i = k + 1
        lastSignificant = 'str'
      } else {
        lastSignificant = '/'
        i++
      }
    } else if (/[\w$]/.test(c)) {
      let k = i + 1
      while (k < n && /[\w$]/.test(src[k] as string)) k++
      lastSignificant = src.slice(i, k)
      i = k
    } else {
      if (c === '{') depth++
      else if (c === '}') {
        depth--
        if (templateStack.length > 0 && templateStack.at(-1) === depth) {
          templateStack.pop()
          i = scanTemplate(i + 1)
          lastSignificant = 'str'
          continue
        }
      }
      if (!/\s/.test(c)) lastSignificant = c
      i++
    }
  }
  return { masked: out.join(''), strings }
}

interface Cycle {
  readonly file: string
  readonly line: number
  readonly path: string[]
}

/** Every distinct cycle closed by a back edge of a depth-first walk, each reported once. */
function findCycles(graph: Map<string, Array<[string, number]>>): Cycle[] {
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const seen = new Set<string>()
  const cycles: Cycle[] = []
  const visit = (node: string) => {
    state.set(node, 'open')
    stack.push(node)
    for (const [next, line] of graph.get(node) ?? []) {
      const s = state.get(next)
      if (s === 'open') {
        const members = stack.slice(stack.indexOf(next))
        const key = [...members].sort().join('\0')
        if (!seen.has(key)) {
          seen.add(key)
          cycles.push({ file: node, line, path: [...members, next] })
        }
      } else if (s === undefined && graph.has(next)) {
        visit(next)
      }
    }
    stack.pop()
    state.set(node, 'done')
  }
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node)
  return cycles
}

function main(): void {
  const root = process.argv[2] ?? join(import.meta.dirname, '..')
  const { files, violations } = checkImports(root)
  if (violations.length > 0) {
    for (const v of violations) process.stdout.write(`${v.file}:${v.line}: ${v.message}\n`)
    process.exitCode = 1
    return
  }
  process.stdout.write(`imports ok (${files} files)\n`)
}

if (import.meta.main) main()
