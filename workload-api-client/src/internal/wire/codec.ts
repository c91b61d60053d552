/**
 * The Workload API messages on the wire: the code protoc-gen-es generated
 * from proto/workload.proto does the encoding and decoding; this module adds
 * what the library promises on top of it. Decoding is strict (check-wire.ts)
 * and every failure is a SPIFFE_WLAPI_MALFORMED_RESPONSE; unknown fields are
 * dropped, as the messages are never re-encoded. Encoding checks strings and
 * Struct JSON first (prepare.ts).
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf'
import { errorMessage, SpiffeError } from '../../errors.ts'
import { checkWire, MAX_MESSAGE_DEPTH } from './check-wire.ts'
import { prepareMessage } from './prepare.ts'

/** Encodes a message, or a plain initializer object of one, to protobuf bytes. */
export function encodeMessage<D extends DescMessage>(
  desc: D,
  init: MessageInitShape<D> | object,
): Uint8Array {
  return toBinary(desc, create(desc, prepareMessage(desc, init) as MessageInitShape<D>))
}

/** Decodes protobuf bytes; throws SPIFFE_WLAPI_MALFORMED_RESPONSE with a stable reason. */
export function decodeMessage<D extends DescMessage>(desc: D, bytes: Uint8Array): MessageShape<D> {
  checkWire(desc, bytes)
  try {
    return fromBinary(desc, bytes, { readUnknownFields: false, recursionLimit: MAX_MESSAGE_DEPTH })
  } catch (err) {
    // check-wire.ts refuses everything the generated decoder is known to refuse; this is the safety net.
    throw new SpiffeError('SPIFFE_WLAPI_MALFORMED_RESPONSE', `${desc.typeName}: ${errorMessage(err)}`, {
      reason: 'UNDECODABLE',
      cause: err,
    })
  }
}
