export * from './wx-identity.mjs'
export * from './middleware.mjs'
export * from './service.mjs'
