/**
 * A real OPA server for one test file: `opa run --server` on a free
 * 127.0.0.1 port with the given Rego modules, decision logs on the console
 * (so a test can count the decisions OPA really made), killed in teardown.
 * The benchmark launches one without decision logs.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { Test } from 'tap'
import { opaBin } from './opa-install.ts'

export interface OpaServer {
  readonly url: string
  /** Decisions OPA has logged so far; with `containing`, only those whose log line (input included) contains it. */
  decisions(containing?: string): number
  /** Kills the server (teardown does it too) and waits for it to exit. */
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  await new Promise((r) => srv.close(r))
  return port
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return res.status === 200
  } catch {
    return false
  }
}

/** An OPA server for a test file, killed in its teardown. */
export async function startOpa(
  t: Test,
  modules: Record<string, string>,
  options: { args?: readonly string[] } = {},
): Promise<OpaServer> {
  const opa = await launchOpa(t.testdir(), modules, options)
  t.teardown(opa.stop)
  return opa
}

/** An OPA server with the modules written into `dir`; the caller stops it. */
export async function launchOpa(
  dir: string,
  modules: Record<string, string>,
  options: { decisionLogs?: boolean; args?: readonly string[] } = {},
): Promise<OpaServer> {
  const logs = options.decisionLogs === false ? [] : ['--set', 'decision_logs.console=true']
  const files = Object.entries(modules).map(([name, text]) => {
    const file = join(dir, name)
    writeFileSync(file, text)
    return file
  })
  // The port is free when chosen but could be taken before OPA binds it: retry on a fresh one.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const logged: string[] = []
    let out = ''
    let tail = ''
    const child: ChildProcess = spawn(
      opaBin(),
      ['run', '--server', '--addr', `127.0.0.1:${port}`, ...logs, ...(options.args ?? []), ...files],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let exited = false
    const exit = new Promise<void>((r) =>
      child.once('exit', () => {
        exited = true
        r()
      }),
    )
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8')
      tail = (tail + text).slice(-2000)
      out += text
      const lines = out.split('\n')
      out = lines.pop() as string
      for (const l of lines) if (l.includes('"decision_id"')) logged.push(l)
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    const stop = async () => {
      if (!exited) child.kill('SIGKILL')
      await exit
    }
    const deadline = Date.now() + 30_000
    while (!exited && Date.now() < deadline && !(await healthy(url))) {
      await new Promise((r) => setTimeout(r, 50))
    }
    if (!exited && (await healthy(url)))
      return {
        url,
        decisions: (containing) =>
          containing === undefined ? logged.length : logged.filter((l) => l.includes(containing)).length,
        stop,
      }
    await stop()
    if (attempt >= 3) throw new Error(`opa did not become healthy at ${url}: ${tail}`)
  }
}
