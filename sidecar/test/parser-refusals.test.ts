// What the listener reads from the bytes Node's parser refused (rawPacket, bytesParsed): a method it does not
// know versus bytes that are no request line; an overflow inside the request line versus among the fields. The
// real-socket cases are in edge-framing.test.ts and edge-limits.test.ts; these pin the edges of the reading.
import t from 'tap'
import { overflowInRequestLine, unknownMethod } from '../src/listener/parser-refusals.ts'

const at = (text: string, bytesParsed: number) => ({ rawPacket: Buffer.from(text, 'latin1'), bytesParsed })

t.test('unknownMethod: a token and a space, wherever the request starts in the chunk', async (t) => {
  t.equal(unknownMethod(at('get / HTTP/1.1\r\n\r\n', 0)), 'get')
  t.equal(unknownMethod(at('FOO / HTTP/1.1\r\n\r\n', 1)), 'FOO')
  t.equal(unknownMethod(at('GET / HTTP/1.1\r\nHost: x\r\n\r\nget /b HTTP/1.1\r\n\r\n', 27)), 'get')
  t.equal(unknownMethod(at('\x16\x03\x01\x02\x00', 0)), undefined, 'a TLS record')
  t.equal(unknownMethod(at('G\x00T / HTTP/1.1\r\n', 1)), undefined, 'a NUL in the method')
  t.equal(unknownMethod(at(`${'A'.repeat(40)} / HTTP/1.1\r\n`, 2)), undefined, 'longer than any method')
  t.equal(unknownMethod(at('GET', 3)), undefined, 'no space after it')
  t.equal(unknownMethod({ rawPacket: 'GET / ', bytesParsed: 0 }), undefined, 'not a buffer')
  t.equal(unknownMethod({}), undefined)
})

t.test('overflowInRequestLine: the target is what overflowed, or a field', async (t) => {
  const a = 'a'.repeat(100)
  t.ok(
    overflowInRequestLine(at(`GET /${a} HTTP/1.1\r\nHost: x\r\n\r\n`, 104)),
    'the whole target in the chunk',
  )
  t.ok(overflowInRequestLine(at(`GET /${a}`, 104)), 'the chunk ends inside the target')
  t.ok(overflowInRequestLine(at(`GET http://x/${a}`, 110)), 'absolute-form')
  t.ok(overflowInRequestLine(at(`OPTIONS *${a}`, 100)), 'asterisk-form')
  t.ok(
    overflowInRequestLine(at(`${a} HTTP/1.1\r\nHost: x\r\n\r\n`, 100)),
    'a chunk that began inside the target',
  )
  t.ok(
    overflowInRequestLine(at(`GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /${a} HTTP/1.1\r\n`, 131)),
    'a pipelined request',
  )
  t.notOk(overflowInRequestLine(at(`GET / HTTP/1.1\r\nX-Big: ${a}\r\n\r\n`, 123)), 'a big field')
  t.notOk(overflowInRequestLine(at(`GET / HTTP/1.1\r\n${'X-A: 1\r\n'.repeat(50)}`, 300)), 'many fields')
  t.notOk(overflowInRequestLine(at(`${a}\r\n\r\n`, 100)), 'a chunk that began inside a field value')
  t.notOk(overflowInRequestLine(at(`${a} more words\r\n`, 100)), 'a field value with spaces')
  t.notOk(overflowInRequestLine({}), 'nothing to read')
})
