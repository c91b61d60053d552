// deploy/compose/compose.yaml against the Compose Specification's JSON Schema (vendored, see vendor/README.md),
// plus what a schema cannot see: the files it mounts exist, the svidecar configs and policies it mounts load,
// images are pinned, and every service, volume and namespace it names is defined.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Ajv } from 'ajv'
import { loadConfig, loadPolicyFile } from 'svidecar'
import t from 'tap'
import { parse } from 'yaml'
import { REPO_ROOT } from '../harness/image.ts'

const COMPOSE_DIR = join(REPO_ROOT, 'deploy/compose')
const COMPOSE_FILE = join(COMPOSE_DIR, 'compose.yaml')

interface Service {
  image?: string
  build?: string | { context: string; dockerfile?: string }
  volumes?: string[]
  depends_on?: Record<string, { condition: string }> | string[]
  network_mode?: string
  pid?: string
  user?: string
  command?: string[]
  entrypoint?: string[]
}
interface ComposeFile {
  services: Record<string, Service>
  volumes: Record<string, unknown>
}

// Merge keys (`<<: *svidecar`) are YAML 1.1, which Compose reads; resolve them as Compose does.
const compose = parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile
const services = compose.services

t.test('the compose file is valid against the Compose Specification schema', async (t) => {
  const schema = JSON.parse(readFileSync(join(import.meta.dirname, 'vendor/compose-spec.json'), 'utf8'))
  // It names draft-07 by an https URL Ajv does not know as a meta-schema id; draft-07 is Ajv's default anyway.
  t.equal(schema.$schema, 'https://json-schema.org/draft-07/schema')
  delete schema.$schema
  // Formats (`duration`...) are for documentation here; the spec leaves their grammar to Compose.
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false })
  const validate = ajv.compile(schema)
  const valid = validate(compose)
  t.ok(valid, JSON.stringify(validate.errors, null, 2))
  // The schema is not a pushover: a typo in a service key is refused.
  const broken = structuredClone(compose) as unknown as { services: Record<string, Record<string, unknown>> }
  ;(broken.services['spire-server'] as Record<string, unknown>).imagee = 'x'
  t.notOk(validate(broken), 'an unknown service key is an error')
})

t.test('the topology the README promises', async (t) => {
  t.same(Object.keys(services).sort(), [
    'agent-svidecar',
    'demo-agent',
    'llm-svidecar',
    'mcp-server',
    'mcp-svidecar',
    'model-server',
    'prometheus',
    'spire-agent',
    'spire-bootstrap',
    'spire-server',
  ])
  t.equal(
    services['spire-server']?.image,
    'ghcr.io/spiffe/spire-server:1.15.3',
    'the SPIRE release CI builds',
  )
  t.equal(services['spire-agent']?.image, 'ghcr.io/spiffe/spire-agent:1.15.3')
  const uids = new Set<string>()
  for (const name of ['agent-svidecar', 'mcp-svidecar', 'llm-svidecar']) {
    const s = services[name] as Service
    t.equal(s.pid, 'service:spire-agent', `${name}: in the agent's PID namespace (unix attestor)`)
    t.ok(s.user !== undefined && /^\d+$/.test(s.user), `${name}: runs as a numeric uid`)
    uids.add(s.user as string)
    t.ok(
      s.volumes?.some((v) => v.startsWith('spire-agent-socket:') && v.endsWith(':ro')),
      `${name}: the agent's socket, read-only`,
    )
  }
  t.equal(uids.size, 3, 'one uid per svidecar, so their entries select them apart')
  for (const [app, sidecar] of [
    ['demo-agent', 'agent-svidecar'],
    ['mcp-server', 'mcp-svidecar'],
    ['model-server', 'llm-svidecar'],
  ] as const) {
    t.equal(services[app]?.network_mode, `service:${sidecar}`, `${app} shares ${sidecar}'s network namespace`)
  }
})

t.test('images are pinned; names, volumes and files it refers to exist', async (t) => {
  for (const [name, s] of Object.entries(services)) {
    if (s.image !== undefined && s.build === undefined) {
      t.match(s.image, /:[\w][\w.-]*$/, `${name}: image has a tag`)
      t.notMatch(s.image, /:latest$/, `${name}: not :latest`)
    }
    if (s.build !== undefined) {
      const context = typeof s.build === 'string' ? s.build : s.build.context
      const dockerfile = typeof s.build === 'string' ? 'Dockerfile' : (s.build.dockerfile ?? 'Dockerfile')
      t.ok(existsSync(join(COMPOSE_DIR, context, dockerfile)), `${name}: ${context}/${dockerfile} exists`)
    }
    const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {})
    for (const dep of deps) t.ok(services[dep], `${name} depends on a defined service ${dep}`)
    for (const ns of [s.network_mode, s.pid]) {
      if (ns?.startsWith('service:')) t.ok(services[ns.slice(8)], `${name}: ${ns} is a defined service`)
    }
    for (const volume of s.volumes ?? []) {
      const [source] = volume.split(':') as [string]
      if (source.startsWith('.')) {
        const path = resolve(COMPOSE_DIR, source)
        t.ok(existsSync(path) && statSync(path).isFile(), `${name}: bind mount ${source} is a file`)
      } else t.ok(Object.hasOwn(compose.volumes, source), `${name}: named volume ${source} is declared`)
    }
  }
})

t.test('the svidecar configs and policies it mounts load', async (t) => {
  for (const name of ['agent-svidecar', 'mcp-svidecar', 'llm-svidecar']) {
    const mounts = new Map(
      (services[name]?.volumes ?? []).map((v) => {
        const [source, target] = v.split(':') as [string, string]
        return [target, resolve(COMPOSE_DIR, source)]
      }),
    )
    const configPath = mounts.get('/etc/svidecar/svidecar.yaml')
    t.ok(configPath, `${name}: a config at the image's default path`)
    const config = loadConfig(configPath as string, {})
    t.equal(
      config.workloadApi.socket,
      'unix:///run/spire/sockets/api.sock',
      `${name}: the mounted agent socket`,
    )
    if (config.policy !== undefined) {
      t.equal(config.policy.file, '/etc/svidecar/policy.yaml')
      const policy = mounts.get('/etc/svidecar/policy.yaml')
      t.ok(policy, `${name}: its policy is mounted`)
      t.ok(loadPolicyFile(policy as string).document.rules.length > 0, `${name}: the policy loads`)
    }
  }
})
