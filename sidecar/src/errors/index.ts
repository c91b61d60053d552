export * from './codes.ts'
export * from './svidecar-error.ts'
