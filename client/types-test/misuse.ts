// Misuse that must NOT compile. Unlike the @ts-expect-error lines elsewhere,
// nothing here is annotated: misuse.test.mjs runs tsc on this file and checks
// that it fails with exactly the errors the `// error:` lines announce, each
// on the statement below it.
import { createAuth, AuthError, type PlatformApi } from 'wx-edge-client';

declare const api: PlatformApi;
const auth = createAuth({ baseUrl: 'https://edge.example.com', api });

// error: Property 'baseUrl' is missing
createAuth({ api });

// error: 'baseURL' does not exist in type 'CreateAuthOptions'
createAuth({ baseURL: 'https://edge.example.com', api });

// error: Type 'number' is not assignable to type 'string'
createAuth({ baseUrl: 443, api });

// error: Property 'api' is missing
createAuth({ baseUrl: 'https://edge.example.com' });

// error: missing the following properties from type 'PlatformApi': login, request
createAuth({ baseUrl: 'https://edge.example.com', api: {} });

// error: Property 'login' is missing
createAuth({ baseUrl: 'https://edge.example.com', api: { request: api.request } });

// error: Type 'string' is not assignable to type 'number'
createAuth({ baseUrl: 'https://edge.example.com', api, refreshMargin: '30' });

// error: Property 'url' is missing
auth.request({ method: 'GET' });

// error: Type '"GTE"' is not assignable to type 'HttpMethod
auth.request({ url: '/api/orders', method: 'GTE' });

// error: not assignable to parameter of type 'PhoneDetail'
auth.bindPhone(13800138000);

// error: Expected 1-3 arguments, but got 0
new AuthError();

// error: Property 'then' does not exist on type 'boolean'
auth.isLoggedIn().then(() => {});

// error: Expected 0 arguments, but got 1
auth.logout({ force: true });

// error: Type 'string' is not assignable to type 'number'
createAuth({ baseUrl: 'https://edge.example.com', api, maxRetryWait: '10' });

// error: Type 'number' is not assignable to type 'Promise<unknown>'
createAuth({ baseUrl: 'https://edge.example.com', api, sleep: (ms: number) => ms });

// error: Property 'then' does not exist on type 'boolean'
auth.ensureSessionKey().then((renewed) => renewed.then());
