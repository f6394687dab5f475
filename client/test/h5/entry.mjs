// The Taro H5 bundle's entry (see bundle.mjs): Taro's H5 runtime and the
// client library, as an H5 app gets them. (In a Taro app, `Taro.request` is
// rewritten by Taro's Babel plugin into the named export of @tarojs/taro-h5;
// the namespace here is the same functions.)
import * as Taro from '@tarojs/taro-h5';
import { createAuth, AuthError } from '../../index.mjs';

export { Taro, createAuth, AuthError };
