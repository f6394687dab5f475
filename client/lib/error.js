/*
 * wx-edge client: the one error type every part rejects with.
 */
'use strict';

/**
 * Every failure the client reports.
 *
 * - `code`: the worker's `error` code (`invalid_code`, `decrypt_failed`, ...) or
 *   one of the client's own (`network_error`, `wx_login_failed`,
 *   `phone_denied`, `not_logged_in`, `logged_out`, `logout_pending`,
 *   `bad_response`, `invalid_request`).
 * - `message`: the worker's message, passed through unchanged, or the client's.
 * - `statusCode`: the HTTP status, or 0 when there was no HTTP response.
 * - `wechatErrcode`: WeChat's errcode, when the worker reported one.
 * - `errMsg`: the platform's `errMsg` (wx.request / wx.login / getPhoneNumber), when there was one.
 * - `retryAfter`: seconds, from the worker's Retry-After (429 / 503), when it sent one.
 * - `pending`, `cause` (`logout_pending` only): how many logouts still wait
 *   for the worker's confirmation, and the error that kept this one from it.
 */
class AuthError extends Error {
  constructor(code, message, details) {
    super(message || code);
    var d = details || {};
    this.name = 'AuthError';
    this.code = code;
    this.statusCode = typeof d.statusCode === 'number' ? d.statusCode : 0;
    if (d.wechatErrcode !== undefined && d.wechatErrcode !== null) this.wechatErrcode = d.wechatErrcode;
    if (d.errMsg !== undefined) this.errMsg = d.errMsg;
    if (typeof d.retryAfter === 'number') this.retryAfter = d.retryAfter;
  }
}

module.exports = { AuthError: AuthError };
