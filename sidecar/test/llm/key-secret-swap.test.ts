// A provider key mounted from a Kubernetes Secret is replaced the way kubelet replaces it: a new timestamped
// directory, a `..data_tmp` symlink to it renamed over `..data` (one atomic rename), the old directory removed;
// the file the config names is a symlink through `..data` and is never written itself. Each new key is the one
// the provider gets on the calls after the swap.
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import OpenAI from 'openai'
import t from 'tap'
import { waitFor } from '../../../workload-api-client/test/helpers/wait.ts'
import { startLlmSidecar } from '../helpers/llm-sidecar.ts'

t.test('a Secret mount swapped by its ..data symlink: the new key is injected', async (t) => {
  const s = await startLlmSidecar(t, { writeKey: false })
  const dir = dirname(s.openaiKeyFile)
  const name = 'openai-key'
  const publish = (version: string, key: string) => {
    mkdirSync(join(dir, version))
    writeFileSync(join(dir, version, name), `${key}\n`)
    symlinkSync(version, join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  }
  publish('..2026_11_30_10_00_00.1', 'sk-first-0123456789')
  symlinkSync(`..data/${name}`, s.openaiKeyFile)
  const openai = new OpenAI({ baseURL: `${s.outbound}/v1`, apiKey: 'dummy', maxRetries: 0 })
  const keyUsed = async () => {
    const res = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [] }).then(
      () => true,
      () => false,
    )
    return res ? s.upstream.received.at(-1)?.headers.authorization : undefined
  }
  await waitFor(async () => (await keyUsed()) === 'Bearer sk-first-0123456789', 'the first key', 10_000, 50)

  for (const [i, key] of ['sk-second-0123456789', 'sk-third-0123456789'].entries()) {
    const previous = i === 0 ? '..2026_11_30_10_00_00.1' : '..2026_11_30_11_00_00.2'
    publish(i === 0 ? '..2026_11_30_11_00_00.2' : '..2026_11_30_12_00_00.3', key)
    rmSync(join(dir, previous), { recursive: true })
    await waitFor(
      async () => (await keyUsed()) === `Bearer ${key}`,
      `key ${i + 2} after the swap`,
      10_000,
      50,
    )
  }
  for (const k of ['sk-first-', 'sk-second-', 'sk-third-'])
    t.notOk(s.logs.text.includes(`${k}0123456789`), `no key in the log (${k}…)`)
  t.match(s.logs.text, /loaded/, 'the reloads are logged (where from, not the key)')
})
