// The benchmark's baseline: a bare JavaScript pass-through worker. It
// forwards the method, path, query, headers and body to ORIGIN_URL and
// returns the origin's answer as it comes (streamed), nothing else: no
// token check, no header rewriting. Whatever the Rust worker does beyond
// this costs throughput relative to this worker.
//
// With NO_STORE set it also asks `cache: 'no-store'`, as wx-edge's proxied
// fetch must (the contract: an origin's answer never enters a shared
// cache); the difference between the two is what that requirement costs
// any worker.
//
// With a SESSIONS KV namespace bound it first reads one key per request,
// as wx-edge's default `every-request` check reads the session's replica:
// what one KV read costs a JS worker here.
export default {
  async fetch(request, env) {
    const url = new URL(request.url)
    if (env.SESSIONS) await env.SESSIONS.get('session:bench')
    return fetch(env.ORIGIN_URL + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: 'manual',
      ...(env.NO_STORE ? { cache: 'no-store' } : {}),
    })
  },
}
