// selfhost/nginx.conf in front of the self-host profile: the server block as
// shipped, with only its TLS listen lines and certificate paths replaced by a
// plain loopback port and its upstream pointed at the profile's port. It
// must overwrite X-Real-IP with the connection's address (so a client's
// X-Real-IP or CF-Connecting-IP counts for nothing), pass the worker's own
// errors unchanged, and answer the documented 503 while workerd is down.
// Skipped, saying so, where nginx is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startWechatSim } from '../support/wechat-sim.mjs';
import { startEchoOrigin } from '../support/echo-origin.mjs';
import { root, startProfile } from './profile.mjs';

const APPID = 'wxd930ea5d5a258f4f';
const APPSECRET = 'nginx-appsecret-' + randomBytes(8).toString('hex');
const ADMIN_TOKEN = randomBytes(48).toString('base64');
const FORGED = '203.0.113.66';

function nginxBinary() {
  for (const bin of ['nginx', '/usr/sbin/nginx']) {
    try {
      execFileSync(bin, ['-v'], { stdio: 'ignore' });
      return bin;
    } catch {
      // not this one
    }
  }
  return undefined;
}

async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** selfhost/nginx.conf's first server block, made to listen on plain HTTP at `port`, upstream `upstreamPort`. */
async function shippedServerBlock(port, upstreamPort) {
  let conf = await readFile(path.join(root, 'selfhost', 'nginx.conf'), 'utf8');
  conf = conf.replace(/server 127\.0\.0\.1:8787;/, `server 127.0.0.1:${upstreamPort};`);
  // Only the TLS server (the first): the port-80 redirect block is dropped.
  conf = conf.slice(0, conf.lastIndexOf('\nserver {'));
  conf = conf.replace(/^[ \t]*listen [^\n]*ssl[^\n]*$/gm, '');
  conf = conf.replace(/^[ \t]*ssl_\w+ [^\n]*$/gm, '');
  conf = conf.replace(/(server_name [^;]+;)/, `$1\n    listen 127.0.0.1:${port};`);
  assert.match(conf, /proxy_set_header X-Real-IP \$remote_addr;/);
  assert.doesNotMatch(conf, /^[^#\n]*\bssl/m);
  return conf;
}

const nginx = nginxBinary();

test(
  'nginx.conf: X-Real-IP overwritten, worker errors passed on, 503 while workerd restarts',
  { skip: nginx ? false : 'nginx is not installed' },
  async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wx-edge-nginx-'));
    const sim = await startWechatSim({ appid: APPID, secret: APPSECRET });
    const origin = await startEchoOrigin();
    let profile;
    let proxy;
    t.after(async () => {
      await profile?.kill();
      if (proxy && proxy.exitCode === null) {
        proxy.kill('SIGQUIT');
        await once(proxy, 'exit');
      }
      await sim.close();
      await origin.close();
      await rm(dir, { recursive: true, force: true });
    });

    const envFile = path.join(dir, 'wx-edge.env');
    const env = [
      `WX_APPID=${APPID}`,
      `WX_APPSECRET=${APPSECRET}`,
      `WX_API_BASE=${sim.url}`,
      `ORIGIN_URL=${origin.url}`,
      `TOKEN_SECRET=${randomBytes(48).toString('base64')}`,
      `REFRESH_SECRET=${randomBytes(48).toString('base64')}`,
      `ADMIN_TOKEN=${ADMIN_TOKEN}`,
      'WX_TIMEOUT_MS=1500',
    ];
    await writeFile(envFile, env.join('\n') + '\n', { mode: 0o600 });
    profile = await startProfile({ envFile, data: path.join(dir, 'data'), listen: '127.0.0.1:0' });

    const port = await freePort();
    await mkdir(path.join(dir, 'nginx'));
    const conf = path.join(dir, 'nginx', 'nginx.conf');
    const temp = (name) => path.join(dir, 'nginx', name);
    await writeFile(
      conf,
      [
        'daemon off;',
        'master_process off;',
        `pid ${temp('nginx.pid')};`,
        `error_log ${temp('error.log')} warn;`,
        'events { worker_connections 64; }',
        'http {',
        '  access_log off;',
        `  client_body_temp_path ${temp('body')};`,
        `  proxy_temp_path ${temp('proxy')};`,
        `  fastcgi_temp_path ${temp('fastcgi')};`,
        `  uwsgi_temp_path ${temp('uwsgi')};`,
        `  scgi_temp_path ${temp('scgi')};`,
        await shippedServerBlock(port, profile.port),
        '}',
        '',
      ].join('\n'),
    );
    proxy = spawn(nginx, ['-p', path.join(dir, 'nginx'), '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        await fetch(url + '/.well-known/jwks.json');
        break;
      } catch (e) {
        if (i > 50 || proxy.exitCode !== null)
          throw new Error(`nginx did not start: ${await readFile(temp('error.log'), 'utf8').catch(() => '')}`, {
            cause: e,
          });
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    const forged = { 'X-Real-IP': FORGED, 'CF-Connecting-IP': FORGED, 'X-Forwarded-For': FORGED };
    const login = await fetch(url + '/auth/login', {
      method: 'POST',
      headers: { ...forged, 'content-type': 'application/json' },
      body: JSON.stringify({ code: 'viaproxy.1' }),
    });
    assert.equal(login.status, 200);
    const { openid, access_token: access } = await login.json();
    const record = await (
      await fetch(`${url}/auth/admin/users/${openid}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).json();
    assert.equal(record.last_login_ip, '127.0.0.1');

    const echoed = await (
      await fetch(url + '/where', { headers: { ...forged, authorization: `Bearer ${access}` } })
    ).json();
    assert.equal(echoed.headers['x-wx-client-ip'], '127.0.0.1');
    assert.equal(echoed.headers['x-forwarded-proto'], 'http');
    assert.ok(!JSON.stringify(echoed.headers).includes(FORGED), JSON.stringify(echoed.headers));

    // The worker's own 502 reaches the client as the worker made it.
    const wechatDown = await fetch(url + '/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code: 'http500.1' }),
    });
    assert.equal(wechatDown.status, 502);
    assert.equal((await wechatDown.json()).error, 'wechat_unavailable');

    // workerd down (a restart): the documented 503, retryable.
    assert.equal(await profile.stop(), 0);
    const down = await fetch(url + '/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"refresh_token":"x"}',
    });
    assert.equal(down.status, 503);
    assert.equal(down.headers.get('retry-after'), '2');
    assert.equal(down.headers.get('x-wx-edge-error'), 'store_unavailable');
    assert.equal((await down.json()).error, 'store_unavailable');
  },
);

test(
  'nginx.conf as shipped (TLS, HTTP/2, the redirect block) passes nginx -t',
  { skip: nginx ? false : 'nginx is not installed' },
  async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wx-edge-nginx-t-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const cert = path.join(dir, 'edge.pem');
    const key = path.join(dir, 'edge.key');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=edge.example.cn',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const shipped = (await readFile(path.join(root, 'selfhost', 'nginx.conf'), 'utf8'))
      .replace('/etc/nginx/tls/edge.example.cn.pem', cert)
      .replace('/etc/nginx/tls/edge.example.cn.key', key);
    const conf = path.join(dir, 'nginx.conf');
    await writeFile(
      conf,
      [
        'pid ' + path.join(dir, 'nginx.pid') + ';',
        `error_log ${path.join(dir, 'error.log')};`,
        'events {}',
        'http {',
        shipped,
        '}',
        '',
      ].join('\n'),
    );
    execFileSync(nginx, ['-t', '-q', '-p', dir, '-c', conf], { stdio: 'pipe' });
  },
);
