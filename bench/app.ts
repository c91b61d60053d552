// The benchmark's upstream app: answers every request with a small JSON body once the request body is read.
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? 0)
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  let bytes = 0
  req.on('data', (c: Buffer) => {
    bytes += c.length
  })
  req.on('end', () => {
    const body = `{"ok":true,"bytes":${bytes}}`
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
    res.end(body)
  })
})
server.listen(port, '127.0.0.1', () => {
  const a = server.address()
  process.stdout.write(`${typeof a === 'object' && a ? a.port : 0}\n`)
})
