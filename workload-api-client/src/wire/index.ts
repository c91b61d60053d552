export * from './messages.ts'
export * from './protobuf.ts'
export * from './service.ts'
