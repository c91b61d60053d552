/**
 * The workload's own X.509-SVID: certificate chain (leaf first) and private
 * key, as the Workload API hands them over. Parsing applies every rule an
 * issuer must have followed (go-spiffe `x509svid.ParseRaw` plus the spec's
 * digitalSignature and root-path rules), because presenting a broken SVID
 * fails at every peer, far from the cause.
 */
import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto'
import { SpiffeError } from './errors.ts'
import { splitDerCertificates } from './internal/der.ts'
import { derToPem, parsePemBlocks } from './pem.ts'
import type { SpiffeId } from './spiffe-id.ts'
import { checkLeaf, checkSigner, leafSpiffeId } from './svid-rules.ts'
import { ParsedCert } from './x509-cert.ts'

/** Key algorithms the Workload API issues (SPIRE: ec-p256 default, ec-p384, rsa-2048/4096) and go-spiffe accepts. */
const SUPPORTED_KEYS = new Set(['ec', 'rsa', 'ed25519'])

export class X509Svid {
  readonly id: SpiffeId
  readonly certificates: readonly X509Certificate[]
  readonly privateKey: KeyObject
  /** The Workload API's `hint` for this SVID, `""` when none. */
  readonly hint: string
  readonly #chainDer: Buffer
  #pem: { certChain: string; key: string } | undefined

  private constructor(id: SpiffeId, certs: readonly ParsedCert[], key: KeyObject, hint: string) {
    this.id = id
    this.certificates = certs.map((c) => c.cert)
    this.privateKey = key
    this.hint = hint
    this.#chainDer = Buffer.concat(certs.map((c) => c.der))
  }

  /** Parses concatenated DER certificates and a DER PKCS#8 key (the Workload API encoding). */
  static parseRaw(certsDer: Uint8Array, keyDer: Uint8Array, hint = ''): X509Svid {
    const certs = splitDerCertificates(certsDer, 'SPIFFE_SVID_INVALID', 'X.509-SVID chain')
    let key: KeyObject
    try {
      key = createPrivateKey({ key: Buffer.from(keyDer), format: 'der', type: 'pkcs8' })
    } catch (err) {
      throw new SpiffeError('SPIFFE_SVID_INVALID', 'X.509-SVID private key is not a DER PKCS#8 key', {
        reason: 'BAD_KEY',
        cause: err,
      })
    }
    return X509Svid.#build(certs, key, hint)
  }

  /** Parses PEM: `CERTIFICATE` blocks leaf first, and one `PRIVATE KEY` (PKCS#8) block. */
  static parsePem(certsPem: string, keyPem: string, hint = ''): X509Svid {
    const blocks = parsePemBlocks(certsPem, 'SPIFFE_SVID_INVALID', 'X.509-SVID chain')
    const certs = blocks.filter((b) => b.label === 'CERTIFICATE').map((b) => b.der)
    if (certs.length === 0) {
      throw new SpiffeError('SPIFFE_SVID_INVALID', 'X.509-SVID PEM holds no CERTIFICATE block', {
        reason: 'EMPTY',
      })
    }
    const keys = parsePemBlocks(keyPem, 'SPIFFE_SVID_INVALID', 'X.509-SVID key').filter(
      (b) => b.label === 'PRIVATE KEY',
    )
    if (keys.length !== 1) {
      throw new SpiffeError(
        'SPIFFE_SVID_INVALID',
        `expected one PKCS#8 "PRIVATE KEY" PEM block, found ${keys.length}`,
        {
          reason: 'BAD_KEY',
        },
      )
    }
    return X509Svid.parseRaw(Buffer.concat(certs), (keys[0] as { der: Buffer }).der, hint)
  }

  static #build(ders: Buffer[], key: KeyObject, hint: string): X509Svid {
    const certs = ders.map((d, i) =>
      ParsedCert.of(
        d,
        'SPIFFE_SVID_INVALID',
        i === 0 ? 'X.509-SVID leaf' : `X.509-SVID chain certificate ${i + 1}`,
      ),
    )
    const leaf = certs[0] as ParsedCert
    const id = leafSpiffeId(leaf)
    checkLeaf(leaf, true)
    for (let i = 1; i < certs.length; i++) {
      checkSigner(certs[i] as ParsedCert, 'SPIFFE_SVID_INVALID', `X.509-SVID chain certificate ${i + 1}`)
    }
    if (key.type !== 'private' || !SUPPORTED_KEYS.has(key.asymmetricKeyType ?? '')) {
      throw new SpiffeError(
        'SPIFFE_SVID_INVALID',
        `unsupported private key type "${key.asymmetricKeyType}"`,
        {
          reason: 'BAD_KEY',
        },
      )
    }
    if (!leaf.cert.checkPrivateKey(key)) {
      throw new SpiffeError('SPIFFE_SVID_INVALID', `private key does not match the public key of ${id}`, {
        reason: 'KEY_MISMATCH',
      })
    }
    return new X509Svid(id, certs, key, hint)
  }

  get leaf(): X509Certificate {
    return this.certificates[0] as X509Certificate
  }

  get notBefore(): Date {
    return this.leaf.validFromDate
  }

  /** The leaf's NotAfter: past it, the SVID must not be presented. */
  get notAfter(): Date {
    return this.leaf.validToDate
  }

  get serialNumber(): string {
    return this.leaf.serialNumber
  }

  /** The chain as concatenated DER, as the Workload API sent it. */
  get chainDer(): Buffer {
    return this.#chainDer
  }

  /**
   * PEM for node:tls `cert` (the whole chain: peers need the intermediates)
   * and `key`. Holds the private key: never log the result.
   */
  toPem(): { certChain: string; key: string } {
    this.#pem ??= {
      certChain: this.certificates.map((c) => derToPem('CERTIFICATE', c.raw)).join(''),
      key: this.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    }
    return this.#pem
  }

  /** True when both hold the same chain (the key follows from the leaf). */
  equals(other: X509Svid | undefined): boolean {
    return other !== undefined && other.hint === this.hint && other.#chainDer.equals(this.#chainDer)
  }

  /** The SVID without its key, for logs. */
  toJSON(): { id: string; hint: string; serialNumber: string; notAfter: string } {
    return {
      id: this.id.toString(),
      hint: this.hint,
      serialNumber: this.serialNumber,
      notAfter: this.notAfter.toISOString(),
    }
  }
}
