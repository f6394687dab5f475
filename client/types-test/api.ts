// The whole declared API, against a hand-written platform object (as a test
// double or another mini-program platform would be), with the client's own
// declaration files checked too (no skipLibCheck: see tsconfig.dts.json).
import defaultExport, {
  createAuth,
  AuthError,
  DEFAULT_STORAGE_KEY,
  type Auth,
  type AuthErrorCode,
  type PhoneAnswer,
  type PlatformApi,
  type RequestResult,
  type Tokens,
} from 'wx-edge-client';
import * as esm from '../index.mjs';

const store = new Map<string, unknown>();
const platform: PlatformApi = {
  login(options) {
    options.success?.({ code: 'alice.1', errMsg: 'login:ok' });
  },
  request(options) {
    if (!options.url.startsWith('https://')) return options.fail?.({ errMsg: 'request:fail url not in domain list' });
    options.success?.({ statusCode: 200, data: { ok: true }, header: {} });
  },
  getStorageSync: (key) => store.get(key),
  setStorageSync: (key, value) => void store.set(key, value),
  removeStorageSync: (key) => void store.delete(key),
};
// Storage is optional: without it the session lives in memory.
const memoryOnly: PlatformApi = { login: platform.login, request: platform.request };

const auth: Auth = createAuth({
  baseUrl: 'https://edge.example.com',
  api: platform,
  storageKey: DEFAULT_STORAGE_KEY,
  now: () => Date.now(),
  refreshMargin: 60,
  maxRetryWait: 5,
  sleep: (ms) => Promise.resolve(ms),
});
esm.createAuth({ baseUrl: 'https://edge.example.com', api: memoryOnly });
defaultExport.createAuth({ baseUrl: 'https://edge.example.com', api: platform });

export async function use(): Promise<void> {
  const t: Tokens = await auth.ensureLogin();
  const expiresAt: number = t.expires_at;
  const res: RequestResult<{ ok: boolean }> = await auth.request<{ ok: boolean }>({
    url: '/api/ok',
    method: 'POST',
    data: 'raw body',
    header: { 'X-Trace': '1' },
    timeout: 5000,
    enableHttp2: true,
  });
  const ok: boolean = res.data.ok && expiresAt > 0;
  const session = await auth.getSession();
  const bound: boolean = session.phone_bound && ok;
  await auth.bindPhone({ code: 'phone-code' });
  await auth.bindPhone({ encryptedData: 'b64', iv: 'b64' });
  const stored: Readonly<Tokens> | null = auth.tokens();
  if (stored && bound && auth.isLoggedIn()) await auth.logout();
  try {
    await auth.logout();
  } catch (e) {
    // Logged out for the app; the worker has not confirmed yet and the client retries.
    if (e instanceof AuthError && e.code === 'logout_pending') {
      const left: number | undefined = e.pending;
      const why: unknown = e.cause;
      const pending: boolean = auth.hasPendingLogout();
      if (pending && left && why) return;
    }
  }
}

export function describe(e: unknown): string {
  if (!(e instanceof AuthError)) return 'unknown';
  const code: AuthErrorCode = e.code;
  const status: number = e.statusCode;
  const wechat: number | undefined = e.wechatErrcode;
  if (e.code === 'rate_limited' || e.code === 'store_unavailable') return `try again in ${e.retryAfter ?? 1} s`;
  return `${code} ${status} ${wechat ?? ''} ${e.errMsg ?? ''} ${e.message}`;
}
export const made = new AuthError('network_error', 'offline', { statusCode: 0, errMsg: 'request:fail' });

// The worker's /auth/phone answer: no refresh token (binding does not rotate it).
export const answer: PhoneAnswer = {
  phoneNumber: '13800138000',
  purePhoneNumber: '13800138000',
  countryCode: '86',
  access_token: 'a.b.c',
  token_type: 'Bearer',
  expires_in: 600,
  openid: 'o1',
  phone_bound: true,
};
// @ts-expect-error a phone answer never carries a refresh token
export const rotated: PhoneAnswer = { ...answer, refresh_token: 'rt' };

// @ts-expect-error tokens() is read-only
auth.tokens()!.access_token = 'x';
// @ts-expect-error the success callback of auth.request is never called: await the promise
auth.request({ url: '/api/ok', success: () => {} });
