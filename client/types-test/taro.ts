// Taro with its published typings (@tarojs/taro): `Taro` must fit `api`.
import Taro from '@tarojs/taro';
import type { BaseEventOrig, ButtonProps } from '@tarojs/components';
import { createAuth } from 'wx-edge-client';

export const auth = createAuth({ baseUrl: 'https://edge.example.com', api: Taro });

export async function createOrder(sku: string): Promise<boolean> {
  const res = await auth.request({ url: '/api/orders', method: 'POST', data: { sku } });
  return res.statusCode === 201;
}

// <Button openType="getPhoneNumber" onGetPhoneNumber={onPhone}>
export async function onPhone(e: BaseEventOrig<ButtonProps.onGetPhoneNumberEventDetail>): Promise<boolean> {
  const phone = await auth.bindPhone(e.detail);
  return phone.countryCode === '86';
}

// @ts-expect-error baseUrl is required
createAuth({ api: Taro });
// @ts-expect-error Taro.request is not the platform object
createAuth({ baseUrl: 'https://edge.example.com', api: Taro.request });
