// A native mini-program with WeChat's official typings (miniprogram-api-typings):
// the global `wx` must fit `api` under --strict, without a cast.
import { createAuth, AuthError } from 'wx-edge-client';

export const auth = createAuth({ baseUrl: 'https://edge.example.com', api: wx });

interface Order {
  id: string;
  total: number;
}

export async function orders(): Promise<Order[]> {
  const res = await auth.request<Order[]>({ url: '/api/orders', method: 'GET', data: { page: 1 } });
  return res.statusCode === 200 ? res.data : [];
}

// <button open-type="getPhoneNumber" bindgetphonenumber="onPhone">, typed as the official typings type it.
export async function onPhone(e: WechatMiniprogram.ButtonGetPhoneNumber): Promise<string | null> {
  try {
    const phone = await auth.bindPhone(e.detail);
    return phone.purePhoneNumber;
  } catch (err) {
    if (err instanceof AuthError && err.code === 'not_internal_user') return null;
    throw err;
  }
}

// Before showing the legacy getPhoneNumber button: the worker holds WeChat's current session_key.
export async function beforePhoneButton(): Promise<boolean> {
  const renewed: boolean = await auth.ensureSessionKey();
  return renewed;
}

// Misuse must not compile (tsc fails on an unused @ts-expect-error).
// @ts-expect-error baseUrl is required
createAuth({ api: wx });
// @ts-expect-error a request function is not the platform object
createAuth({ baseUrl: 'https://edge.example.com', api: wx.request });
// @ts-expect-error wx.request has no PATCH, so neither has auth.request
auth.request({ url: '/api/orders/1', method: 'PATCH' });
