// The gateway in its own process for the benchmark: configuration from the environment
// (as in production), ports and admin token reported over IPC, orderly close on request.
import { loadConfig } from '../config/index.ts';
import { startGateway, createLogger } from '../main.ts';
import { serveRpc } from './lib.ts';

const config = loadConfig(process.env);
const gw = await startGateway(config, createLogger(config.logLevel));

let closing: Promise<void> | null = null;
function close(): Promise<void> {
  closing ??= gw.close().catch((err: Error) => {
    process.stderr.write(`gateway-proc: close failed: ${err.message}\n`);
  });
  return closing;
}

serveRpc({
  gc() {
    const g = (globalThis as { gc?: () => void }).gc;
    if (!g) return { gc: false };
    g();
    g();
    return { gc: true };
  },
  memory() {
    return process.memoryUsage();
  },
  async close() {
    await close();
    // Exit after the answer is out (a --cpu-prof profile is written on exit).
    setTimeout(() => process.exit(0), 20);
    return { closed: true };
  },
});
process.once('SIGTERM', () => void close().then(() => process.exit(0)));

process.send?.({ type: 'ready', mqttPort: gw.mqttPort, httpPort: gw.httpPort, adminToken: gw.adminToken, pid: process.pid });
