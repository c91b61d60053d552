/**
 * nginx as a benchmark peer: one worker, no daemon, a config of its own in
 * `base`, kept-alive upstream connections. What the `server` block holds is
 * the caller's (mTLS termination or origination); `listen` is added here, with
 * `ssl` when the block names a certificate.
 */
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { join } from 'node:path'
import { sleep } from './procs.ts'

export interface StartedNginx {
  child: ChildProcess
  pid: number
  port: number
}

/** A port nothing listens on right now (the kernel's pick), for a peer that cannot report its own. */
export async function unusedPort(): Promise<number> {
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as AddressInfo).port
  await new Promise((r) => probe.close(r))
  return port
}

function config(base: string, port: number, server: string, upstreamPort: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${base}/nginx.pid;
error_log ${base}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${base}/body;
  proxy_temp_path ${base}/proxy;
  # nginx closes a keep-alive connection after 1,000 requests by default; every contender would then pay for
  # reconnecting at a rate that depends on how it spreads requests over connections. Keep connections instead.
  keepalive_requests 1000000;
  upstream next { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port}${/^\s*ssl_certificate /m.test(server) ? ' ssl' : ''};
${server}
  }
}
`
}

/**
 * Starts nginx with `spawn` (pinned to a core, or in a cgroup) in `dir/name-<attempt>`. Another process on a
 * shared host may take the port between the probe and nginx's bind: then nginx exits and the port answers for
 * someone else, so it starts again on another port until the nginx answering is this one.
 */
export async function startNginx(o: {
  dir: string
  name: string
  spawn: (cmd: string, args: string[]) => ChildProcess
  server: string
  upstreamPort: number
}): Promise<StartedNginx> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const base = join(o.dir, `${o.name}-${attempt}`)
    mkdirSync(base)
    const port = await unusedPort()
    writeFileSync(join(base, 'nginx.conf'), config(base, port, o.server, o.upstreamPort))
    const child = o.spawn('nginx', [
      '-c',
      join(base, 'nginx.conf'),
      '-p',
      base,
      '-e',
      join(base, 'error.log'),
    ])
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') return
      process.stderr.write(
        `${o.name} exited (${code ?? signal}):\n${readFileSync(join(base, 'error.log'), 'utf8')}\n`,
      )
    })
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      // nginx names itself in every answer, also in the 400 a plain request to its TLS port gets.
      const ours = await fetch(`http://127.0.0.1:${port}/`).then(
        (r) => r.headers.get('server')?.startsWith('nginx') === true,
        () => false,
      )
      if (ours && child.exitCode === null) return { child, pid: child.pid as number, port }
      await sleep(50)
    }
    child.kill('SIGKILL')
  }
  throw new Error(`${o.name}: nginx did not start`)
}
