// ES module entry: re-exports the CommonJS implementation, so `import` and
// `require` share one module instance and one AuthError class.
import auth from './index.js';

export const createAuth = auth.createAuth;
export const AuthError = auth.AuthError;
export const DEFAULT_STORAGE_KEY = auth.DEFAULT_STORAGE_KEY;
export default auth;
