// HAProxy as a real child process in front of gateway processes: the shipped
// deploy/haproxy/haproxy.cfg, filled in through its environment variables, run in the
// foreground (`haproxy -db`). scripts/test.sh installs Debian's haproxy when missing.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { REPO, spawnChild, type Child } from './proc.ts';

export const HAPROXY_CFG = `${REPO}deploy/haproxy/haproxy.cfg`;

export function haproxyBin(): string {
  const r = spawnSync('sh', ['-c', 'command -v haproxy || ls /usr/sbin/haproxy'], { encoding: 'utf8' });
  const bin = r.stdout.trim().split('\n')[0];
  if (r.status !== 0 || !bin) throw new Error('haproxy is not installed: scripts/test.sh installs it (apt-get install haproxy)');
  return bin;
}

export interface Haproxy {
  readonly child: Child;
  output(): string;
  stop(): void;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Starts HAProxy with these variables (see the top of haproxy.cfg); resolves once its frontends accept. */
export async function startHaproxy(env: Record<string, string>, ports: number[], timeoutMs = 15_000): Promise<Haproxy> {
  const child = spawnChild(haproxyBin(), ['-db', '-f', HAPROXY_CFG], env);
  const t0 = Date.now();
  for (const p of ports) {
    while (!(await canConnect(p))) {
      if (!child.running) throw new Error(`haproxy exited: ${child.stderr()}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`haproxy not listening on ${p} after ${timeoutMs} ms: ${child.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { child, output: () => child.stdout() + child.stderr(), stop: () => child.killTree() };
}
