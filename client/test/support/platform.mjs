// Which runtime the end-to-end tests (e2e.test.mjs) drive: the fake `wx` and
// the client library as Node imports it, unless a test file installs another
// runtime first and then imports e2e.test.mjs (taro-h5.test.mjs: Taro's H5
// runtime under happy-dom, the client from its esbuild bundle).
//
//   platform.create({ user, failRequest })  the `api` object handed to
//        createAuth, with the fake's test hooks: logins, count(path),
//        storage.get/has/set
//   platform.createAuth, platform.AuthError  the client library
//   platform.stackVars  worker variables the runtime needs (CORS_ORIGINS)
import { createAuth, AuthError } from '../../index.mjs';
import { createFakeWx } from './fake-wx.mjs';

export const platform = { name: 'fake wx', create: createFakeWx, createAuth, AuthError, stackVars: {} };

export function usePlatform(p) {
  Object.assign(platform, p);
}
