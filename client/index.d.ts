// Type declarations for wx-edge-client (index.js / index.mjs).

/** The storage key used when `storageKey` is not given: `'wx-edge.auth'`. */
export declare const DEFAULT_STORAGE_KEY: string;

/**
 * The HTTP methods `auth.request` sends: those `wx.request` supports (WeChat
 * has no PATCH), spelled as WeChat's, Taro's and uni-app's typings spell them.
 */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD' | 'OPTIONS' | 'TRACE' | 'CONNECT';

/** A request body, as the platforms' request calls take it. */
export type RequestData = string | Record<string, any> | ArrayBuffer;

/** What `auth.request` resolves with: the platform's request result, unchanged. */
export interface RequestResult<T = any> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
  cookies?: string[];
  errMsg?: string;
  [key: string]: any;
}

/** Options of `auth.request`: those of `wx.request`, minus the callbacks. */
export interface RequestOptions {
  /** A path on the worker ('/api/orders'), or an absolute URL under `baseUrl`. */
  url: string;
  /** Default 'GET'. */
  method?: HttpMethod;
  /** For GET it goes to the query string (as wx.request does), otherwise to the body. */
  data?: RequestData;
  /** Any `Authorization` here is replaced by the worker's bearer token. */
  header?: Record<string, string>;
  timeout?: number;
  dataType?: 'json' | 'other' | (string & {});
  responseType?: 'text' | 'arraybuffer';
  /** Other options of the platform's request (enableHttp2, ...) are passed through. */
  [key: string]: any;
  /** Callbacks are not called (they are removed): use the returned promise. */
  success?: never;
  fail?: never;
  complete?: never;
}

/** What a platform call hands to `fail`. */
export interface PlatformFailure {
  errMsg: string;
}

/**
 * The platform object: `wx`, `Taro` or `uni`. Only these members are used,
 * always with `success`/`fail` callbacks; a promise a call returns (Taro) is
 * honoured too. Without the storage members the tokens live in memory only.
 *
 * The parameters describe what the client passes and reads, so the
 * platforms' published typings fit: `WechatMiniprogram.Wx`
 * (miniprogram-api-typings), `TaroStatic` (@tarojs/taro) and
 * `UniNamespace.Uni` (@dcloudio/types), checked in `types-test/`.
 */
export interface PlatformApi {
  login(options: {
    success?: (res: { code: string; errMsg?: string }) => void;
    fail?: (err: PlatformFailure) => void;
  }): unknown;
  request(options: {
    url: string;
    method?: HttpMethod;
    data?: RequestData;
    header?: Record<string, string>;
    dataType?: string;
    success?: (res: { statusCode: number; data: unknown; header?: Record<string, any> }) => void;
    fail?: (err: PlatformFailure) => void;
  }): unknown;
  getStorageSync?(key: string): unknown;
  setStorageSync?(key: string, value: any): void;
  removeStorageSync?(key: string): void;
}

export interface CreateAuthOptions {
  /** The worker's URL, e.g. 'https://edge.example.com'. */
  baseUrl: string;
  /** `wx`, `Taro` or `uni`. */
  api: PlatformApi;
  /** Storage key of the token record; default 'wx-edge.auth'. */
  storageKey?: string;
  /** Clock in milliseconds; default `Date.now`. */
  now?: () => number;
  /** Seconds before the access token's expiry at which it is refreshed; default 30 (at most half the lifetime). */
  refreshMargin?: number;
  /**
   * After the worker's 429 `rate_limited` or 503 `store_unavailable`, the
   * client waits for its `Retry-After` (1 s when it sent none) and sends once
   * more; this caps the wait, in seconds. Default 10.
   */
  maxRetryWait?: number;
  /** Waits `ms` milliseconds (those waits); default `setTimeout`. Inject one in tests. */
  sleep?: (ms: number) => Promise<unknown>;
}

/** The stored token record (what `tokens()` returns, frozen). */
export interface Tokens {
  access_token: string;
  token_type: string;
  /** Lifetime of the access token in seconds, as the worker gave it. */
  expires_in: number;
  /** When the access token expires, in ms of the `now` clock. */
  expires_at: number;
  refresh_token: string;
  /** When the refresh token expires, in ms of the `now` clock (0 if unknown). */
  refresh_expires_at: number;
  openid: string;
  unionid?: string;
  phone_bound: boolean;
}

/** `GET /auth/session`. Times are Unix seconds. */
export interface SessionInfo {
  openid: string;
  unionid?: string;
  phone_bound: boolean;
  expires_at: number;
  session_expires_at: number;
  [key: string]: any;
}

/**
 * What `POST /auth/phone` answers: the phone and a new access token carrying
 * it. No `refresh_token`: binding does not rotate it; keep the one you hold.
 */
export interface PhoneAnswer {
  phoneNumber?: string;
  purePhoneNumber: string;
  countryCode: string;
  access_token: string;
  token_type: string;
  expires_in: number;
  openid: string;
  unionid?: string;
  phone_bound: boolean;
  refresh_token?: never;
  refresh_expires_in?: never;
}

/** What `bindPhone` resolves with. */
export interface PhoneInfo {
  phoneNumber: string;
  purePhoneNumber: string;
  countryCode: string;
}

/** The `detail` of a `<button open-type="getPhoneNumber">` event. */
export interface PhoneDetail {
  code?: string;
  encryptedData?: string;
  iv?: string;
  errMsg?: string;
  [key: string]: any;
}

/** Error codes: the worker's (see the contract) and the client's own. */
export type AuthErrorCode =
  // the client's own
  | 'network_error'
  | 'wx_login_failed'
  | 'phone_denied'
  | 'not_logged_in'
  | 'logged_out'
  | 'logout_pending'
  | 'bad_response'
  | 'invalid_request'
  // the worker's
  | 'invalid_code'
  | 'decrypt_failed'
  | 'watermark_mismatch'
  | 'openid_mismatch'
  | 'unauthorized'
  | 'invalid_token'
  | 'token_expired'
  | 'session_revoked'
  | 'invalid_refresh_token'
  | 'refresh_reused'
  | 'user_blocked'
  | 'phone_required'
  | 'not_internal_user'
  | 'relay_refused'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'rate_limited'
  | 'server_misconfigured'
  | 'wechat_unavailable'
  | 'origin_unavailable'
  | 'store_unavailable'
  | (string & {});

export declare class AuthError extends Error {
  constructor(
    code: AuthErrorCode,
    message?: string,
    details?: { statusCode?: number; wechatErrcode?: number; errMsg?: string; retryAfter?: number },
  );
  readonly name: 'AuthError';
  /** The worker's `error` code, or the client's own. */
  code: AuthErrorCode;
  /** HTTP status, or 0 when there was no HTTP response. */
  statusCode: number;
  /** WeChat's errcode, when the worker reported one (`wechat_errcode`). */
  wechatErrcode?: number;
  /** The platform's errMsg (wx.request / wx.login / getPhoneNumber), when there was one. */
  errMsg?: string;
  /** Seconds to wait before trying again, from the worker's `Retry-After` (429 / 503), when it sent one. */
  retryAfter?: number;
  /** `logout_pending` only: how many logouts still wait for the worker's confirmation. */
  pending?: number;
  /** `logout_pending` only: why the worker did not confirm (an `AuthError`: `network_error`, `store_unavailable`, ...). */
  cause?: unknown;
}

export interface Auth {
  /** wx.login → POST /auth/login, always a new session; concurrent calls share one. */
  login(): Promise<Tokens>;
  /** The current session, logging in (or refreshing) only if needed. */
  ensureLogin(): Promise<Tokens>;
  /**
   * wx.request with `Authorization: Bearer <access>`. Logs in on first use,
   * refreshes an expired token, and on the worker's 401 (token_expired,
   * invalid_token, session_revoked) refreshes — or logs in again when the
   * refresh token is dead — and retries once. On the worker's 429
   * rate_limited or 503 store_unavailable (this call, or the login/refresh
   * it needs) it waits for Retry-After (at most `maxRetryWait`) and retries
   * once. Resolves with the origin's response whatever its status; rejects
   * with AuthError on network failure, on a failed login/refresh, or when
   * the retry meets the worker's 401, 429 or 503 again.
   */
  request<T = any>(options: RequestOptions): Promise<RequestResult<T>>;
  /**
   * Bind the phone from a getPhoneNumber button's `e.detail` (or the event).
   * Never calls wx.login for encryptedData/iv: they are encrypted with the
   * CURRENT session's session_key. The worker's answer (`PhoneAnswer`) has
   * a new access token and no refresh token: binding does not rotate it, so
   * the stored refresh token is kept.
   */
  bindPhone(detail: PhoneDetail): Promise<PhoneInfo>;
  /** GET /auth/session; refreshes if needed, never logs in (rejects not_logged_in). */
  getSession(): Promise<SessionInfo>;
  /**
   * End the session: at once for the app (`isLoggedIn()` false, `tokens()`
   * null, no request uses the tokens), then POST /auth/logout (refreshing
   * first when the access token has expired). Resolves when the worker
   * confirmed (204, or its 401 saying the session is already over) this
   * logout and every earlier pending one. Otherwise rejects with AuthError
   * `logout_pending` (`cause`: why): the tokens are kept, apart from the
   * session, only to finish the logout, which is retried by the next
   * `logout()` or `login()`, at app start, and in the background on
   * `request()` with a backoff — see `hasPendingLogout()`.
   */
  logout(): Promise<void>;
  /** Some logout still waits for the worker's confirmation (kept in storage and retried). */
  hasPendingLogout(): boolean;
  /** Tokens are stored and the refresh token has not expired (not verified with the worker). */
  isLoggedIn(): boolean;
  /** A frozen copy of the stored tokens, or null. */
  tokens(): Readonly<Tokens> | null;
}

export declare function createAuth(options: CreateAuthOptions): Auth;

declare const _default: {
  createAuth: typeof createAuth;
  AuthError: typeof AuthError;
  DEFAULT_STORAGE_KEY: typeof DEFAULT_STORAGE_KEY;
};
export default _default;
