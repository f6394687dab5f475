// uni-app with its published typings (@dcloudio/types): the global `uni` must fit `api`.
import { createAuth } from 'wx-edge-client';

export const auth = createAuth({ baseUrl: 'https://edge.example.com', api: uni, storageKey: 'my-app.auth' });

export async function profile(): Promise<unknown> {
  const res = await auth.request({ url: '/api/me' });
  return res.data;
}

// @ts-expect-error baseUrl is required
createAuth({ api: uni });
// @ts-expect-error uni.login is not the platform object
createAuth({ baseUrl: 'https://edge.example.com', api: uni.login });
