// Starting the self-host profile the way an operator does: through
// scripts/selfhost, with settings and secrets in an env file, a data
// directory and a listen address. workerd reports the port it listens on
// through --control-fd, so port 0 (any free port) works.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The environment minus every name the profile reads (its `fromEnvironment`
 * bindings), so that everything the worker is told comes from the env file;
 * the rest (PATH, the toolchain's homes) stays, for scripts/build.
 */
function withoutSettings(env) {
  const capnp = readFileSync(path.join(root, 'selfhost', 'wx-edge.capnp'), 'utf8');
  const names = [...capnp.matchAll(/fromEnvironment = "(\w+)"/g)].map((m) => m[1]);
  if (names.length < 20) throw new Error('selfhost/wx-edge.capnp: fromEnvironment bindings not found');
  const kept = { ...env };
  for (const name of names) delete kept[name];
  return kept;
}

/** Starts scripts/selfhost; resolves when workerd listens, with its port, process and output. */
export async function startProfile({ envFile, data, listen }) {
  const child = spawn(
    path.join(root, 'scripts', 'selfhost'),
    ['--env-file', envFile, '--data', data, '--listen', listen, '--', '--control-fd=3'],
    { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: withoutSettings(process.env) },
  );
  const out = [];
  child.stdout.on('data', (d) => out.push(d.toString()));
  child.stderr.on('data', (d) => out.push(d.toString()));
  const exited = once(child, 'exit');
  const listening = new Promise((resolve, reject) => {
    let buffered = '';
    child.stdio[3].on('data', (d) => {
      buffered += d.toString();
      for (const line of buffered.split('\n').slice(0, -1)) {
        const msg = JSON.parse(line);
        if (msg.event === 'listen' && msg.socket === 'http') resolve(msg.port);
      }
    });
    exited.then(([code]) => reject(new Error(`scripts/selfhost exited (${code}):\n${out.join('')}`)));
  });
  const port = await listening;
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    exited,
    logs: () => out.join(''),
    /** SIGTERM, and the exit code once workerd has drained and exited. */
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
    /** For cleanup after a failure. */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
