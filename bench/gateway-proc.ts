// The gateway in its own process for the benchmark: configuration from the environment
// (as in production), ports and admin token reported over IPC, orderly close on request.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
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

// CPU profile of a chosen window (the benchmark's measured part only), via the inspector.
let session: Session | null = null;
function post<T = unknown>(method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => session!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
}

serveRpc({
  async profileStart() {
    session = new Session();
    session.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 250 });
    await post('Profiler.start');
    return { started: true };
  },
  async profileStop(a: { file: string }) {
    const { profile } = await post<{ profile: object }>('Profiler.stop');
    session!.disconnect();
    session = null;
    writeFileSync(a.file, JSON.stringify(profile));
    return { file: a.file };
  },
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
