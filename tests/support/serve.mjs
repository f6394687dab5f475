// Listening and closing for the local test servers (simulator, echo origin).

/**
 * Starts `server` on host:port (0 = any free port) and returns its URL, port
 * and a close() that may be called more than once. `beforeClose` runs first
 * (e.g. to cancel pending timers); open connections are cut so nothing keeps
 * the process alive.
 */
export async function serve(server, { port, host, beforeClose = () => {} }) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;
  let closing;
  function close() {
    closing ??= new Promise((resolve) => {
      beforeClose();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  }
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`,
    port: actualPort,
    close,
  };
}
