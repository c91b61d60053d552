/**
 * The CEL timestamp accessors (getHours, getDayOfWeek, ... with an optional
 * time zone), replacing @bufbuild/cel 0.6.1's own. Two reasons: that
 * version builds a new Intl.DateTimeFormat on every call with a zone (about
 * 100 µs, on the request path), and it rebuilds wall-clock times as dates in
 * the process's local zone, which shifts hours that fall into a local DST
 * gap. Here a zone's formatter is built once, the last minute's answer is
 * kept per zone, and all arithmetic is in UTC.
 *
 * Semantics are CEL's (langdef "Timestamp and Duration functions"): no zone
 * means UTC; a zone is an IANA name or a fixed offset "+HH:MM"/"-HH:MM";
 * getMonth, getDayOfMonth and getDayOfYear are 0-based, getDate is 1-based,
 * getDayOfWeek is 0 for Sunday.
 */
import { type CelFunc, CelScalar, celFunc, celMethod, objectType } from '@bufbuild/cel'
import { create } from '@bufbuild/protobuf'
import { type Timestamp, TimestampSchema } from '@bufbuild/protobuf/wkt'

interface WallClock {
  year: number
  /** 0-based. */
  month: number
  /** 1-based. */
  day: number
  hour: number
  minute: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()
const lastMinute = new Map<string, { minute: number; wall: WallClock }>()
const FIXED = /^([+-]?)(\d\d):(\d\d)$/

function utcWall(ms: number): WallClock {
  const d = new Date(ms)
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth(),
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
  }
}

function zoned(ms: number, tz: string | undefined): WallClock {
  if (tz === undefined || tz === 'UTC') return utcWall(ms)
  const fixed = FIXED.exec(tz)
  if (fixed !== null) {
    const offset = (Number(fixed[2]) * 60 + Number(fixed[3])) * 60_000
    return utcWall(fixed[1] === '-' ? ms - offset : ms + offset)
  }
  const minute = Math.floor(ms / 60_000)
  const cached = lastMinute.get(tz)
  if (cached !== undefined && cached.minute === minute) return cached.wall
  let format = formatters.get(tz)
  if (format === undefined) {
    // Throws RangeError for an unknown zone: the condition fails, and a failed condition never allows.
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    })
    formatters.set(tz, format)
  }
  const wall: WallClock = { year: 0, month: 0, day: 0, hour: 0, minute: 0 }
  for (const part of format.formatToParts(ms)) {
    const v = Number(part.value)
    if (part.type === 'year') wall.year = v
    else if (part.type === 'month') wall.month = v - 1
    else if (part.type === 'day') wall.day = v
    else if (part.type === 'hour') wall.hour = v
    else if (part.type === 'minute') wall.minute = v
  }
  if (lastMinute.size > 1000) lastMinute.clear()
  lastMinute.set(tz, { minute, wall })
  return wall
}

function millis(ts: Timestamp): number {
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000)
}

const DAY = 86_400_000
const TIMESTAMP = objectType(TimestampSchema)

const ACCESSORS: Record<string, (w: WallClock, ms: number) => number> = {
  getFullYear: (w) => w.year,
  getMonth: (w) => w.month,
  getDate: (w) => w.day,
  getDayOfMonth: (w) => w.day - 1,
  getDayOfWeek: (w) => new Date(Date.UTC(w.year, w.month, w.day)).getUTCDay(),
  getDayOfYear: (w) => (Date.UTC(w.year, w.month, w.day) - Date.UTC(w.year, 0, 1)) / DAY,
  getHours: (w) => w.hour,
  getMinutes: (w) => w.minute,
  // Every zone in use today is offset by whole minutes, so seconds and milliseconds are the instant's own.
  getSeconds: (_w, ms) => Math.floor(ms / 1000) - Math.floor(ms / 60_000) * 60,
  getMilliseconds: (_w, ms) => ms - Math.floor(ms / 1000) * 1000,
}

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds: CEL's timestamp range. */
const MIN_SECONDS = -62_135_596_800n
const MAX_SECONDS = 253_402_300_799n

/**
 * `timestamp(int)`: Unix seconds, as cel-go reads it and as `int(timestamp)` answers here. @bufbuild/cel 0.6.1
 * reads milliseconds, so `timestamp(int(t)) == t` was false.
 */
const TIMESTAMP_FROM_SECONDS = celFunc('timestamp', [CelScalar.INT], TIMESTAMP, (seconds: bigint) => {
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS) throw new Error('timestamp out of range')
  return create(TimestampSchema, { seconds, nanos: 0 })
})

export const TIME_FUNCS: CelFunc[] = [TIMESTAMP_FROM_SECONDS, ...accessors()]

function accessors(): CelFunc[] {
  return Object.entries(ACCESSORS).flatMap(([name, get]) => {
    const impl = function (this: { message: Timestamp }, tz?: string): bigint {
      const ms = millis(this.message)
      return BigInt(get(zoned(ms, tz), ms))
    }
    return [
      celMethod(name, TIMESTAMP, [], CelScalar.INT, impl as never),
      celMethod(name, TIMESTAMP, [CelScalar.STRING], CelScalar.INT, impl as never),
    ]
  })
}
