// The webhooks as the API's routes use them (proto/webhooks.ts WebhookService): the
// endpoints in the control database, their backlog and replay positions in each vehicle's
// shard's stream log.
import { randomUUID } from 'node:crypto';
import type { Db } from '../storage/driver/db.ts';
import type { StreamLogRepo } from '../stream/log.ts';
import type { WebhookService } from '../proto/webhooks.ts';
import { logBacklog, type WebhookRepo } from '../storage/repos/webhooks.ts';
import type { UrlChecker } from './safety.ts';

export interface ServiceDeps {
  repo: WebhookRepo;
  logs: readonly StreamLogRepo[];
  shardDbs: readonly Db[];
  shardOf(vin: string): number;
  checker: UrlChecker;
  /** Margin between measurement and commit for a replay's start (as for a stream's ?from=), ms. */
  fromMarginMs: number;
  /** A new endpoint or a replay: the worker looks at once. */
  wake(): void;
}

const cmp = (a: { tx: number; ord: number }, b: { tx: number; ord: number }): number => (a.tx !== b.tx ? a.tx - b.tx : a.ord - b.ord);

export function createWebhookService(deps: ServiceDeps): WebhookService {
  const { repo } = deps;
  return {
    async create(w) {
      const made = await repo.create({ ...w, id: randomUUID() });
      deps.wake();
      return made;
    },
    list: (recipientId, role) => repo.list(recipientId, role),
    async get(id, recipientId, role) {
      const w = await repo.get(id);
      return w && w.recipientId === recipientId && w.recipientRole === role ? w : null;
    },
    async backlog(id) {
      const states = (await repo.states([id])).filter((s) => s.after !== null);
      let records = 0;
      let oldest: Date | null = null;
      const byShard = new Map<number, typeof states>();
      for (const s of states) {
        const i = deps.shardOf(s.vin);
        byShard.set(i, [...(byShard.get(i) ?? []), s]);
      }
      for (const [i, list] of byShard) {
        const { h } = await deps.logs[i]!.horizon();
        for (const b of await logBacklog(deps.shardDbs[i]!, list.map((s) => ({ vin: s.vin, after: s.after! })), h)) {
          records += b.records;
          if (b.oldestAt && (!oldest || b.oldestAt < oldest)) oldest = b.oldestAt;
        }
      }
      return { records, oldestUndeliveredAt: oldest };
    },
    remove: (id, recipientId, role) => repo.remove(id, recipientId, role),
    async replay(id, recipientId, role, fromMs, grantId) {
      const w = await repo.get(id);
      if (!w || w.recipientId !== recipientId || w.recipientRole !== role) return null;
      const states = (await repo.states([id])).filter((s) => s.after !== null && (grantId === null || s.grantId === grantId));
      if (grantId !== null && states.length === 0) return null;
      let n = 0;
      for (const s of states) {
        const to = await deps.logs[deps.shardOf(s.vin)]!.startFor(s.vin, fromMs, deps.fromMarginMs);
        // Only backwards: records after the cursor are delivered anyway.
        if (cmp(to, s.after!) >= 0) continue;
        await repo.replay(id, s.grantId, to, fromMs);
        n++;
      }
      deps.wake();
      return n;
    },
    async checkUrl(url) {
      const c = await deps.checker.check(url);
      return c.ok ? null : c.problem;
    },
  };
}
