// @wx-edge/origin: everything in one import. The same modules are also
// exported one by one: @wx-edge/origin/verifier, /middleware, /service,
// and /egg (CommonJS, for app/middleware/ of an Egg.js app).
export * from './wx-identity.mjs'
export * from './middleware.mjs'
export * from './service.mjs'
