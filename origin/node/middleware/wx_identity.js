'use strict';
// Egg.js middleware: verifies X-WX-Identity before your controllers run.
//
// Copy this file to app/middleware/wx_identity.js and ../lib/wx-identity.mjs
// to app/lib/wx-identity.mjs, `npm i jose@6`, then in config/config.default.js:
//
//   config.middleware = [ 'wxIdentity' ];
//   config.wxIdentity = {
//     jwksUrl: 'https://edge.example.com/.well-known/jwks.json',
//     audience: 'https://api.example.com',   // your origin, as in the worker's ORIGIN_URL
//     ignore: [ '/health' ],                 // Egg's own match/ignore options work as usual
//   };
//
// Controllers read ctx.state.wxIdentity = { openid, unionid, appid, phone,
// phoneCountry, jti, expiresAt }. A missing or invalid assertion gets 401
// {"error": "missing_identity" | "invalid_identity"}; 503 "jwks_unavailable"
// while the worker's JWKS cannot be fetched. `optional: true` lets requests
// without an assertion through with ctx.state.wxIdentity = null.
//
// jose is an ES module; Egg apps are CommonJS, so the helper is loaded with
// import() once, when the first request arrives.

module.exports = (options = {}, app) => {
  let verifier;
  const ready = import('../lib/wx-identity.mjs').then(core => {
    verifier = options.verifier || core.createVerifier({
      ...options,
      onError: err => app && app.logger && app.logger.warn('[wxIdentity] JWKS fetch failed: %s', err.message),
    });
  });

  return async function wxIdentity(ctx, next) {
    if (!verifier) await ready;
    const value = ctx.get('x-wx-identity');
    if (options.optional === true && !value) {
      ctx.state.wxIdentity = null;
      return next();
    }
    try {
      ctx.state.wxIdentity = await verifier.verify(value);
    } catch (err) {
      if (err && err.code === 'jwks_unavailable') {
        ctx.status = 503;
        ctx.body = { error: 'jwks_unavailable', message: 'identity keys are unavailable; try again' };
        return;
      }
      if (err && (err.code === 'missing_identity' || err.code === 'invalid_identity')) {
        ctx.status = 401;
        ctx.body = { error: err.code, message: 'this API is reachable only through wx-edge' };
        return;
      }
      throw err;
    }
    return next();
  };
};
