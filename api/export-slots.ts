// Concurrent exports per caller. An export reads for as long as its client takes; one
// token running many at once would take the API's database pool from everyone else.
import type { FastifyReply } from 'fastify';
import { ApiError } from './errors.ts';

export interface ExportSlots {
  /** Takes a slot for `key` until the reply is closed; 429 API_ERR_TOO_MANY_EXPORTS when none is free. */
  take(key: string, reply: FastifyReply): void;
  active(key: string): number;
}

export function createExportSlots(maxPerCaller: number): ExportSlots {
  const active = new Map<string, number>();
  return {
    take(key, reply) {
      const n = active.get(key) ?? 0;
      if (n >= maxPerCaller) {
        throw new ApiError(429, 'API_ERR_TOO_MANY_EXPORTS', `at most ${maxPerCaller} exports at once per caller; retry when one has finished`);
      }
      active.set(key, n + 1);
      // 'close' comes once per response: sent in full, failed, or the client went away.
      reply.raw.once('close', () => {
        const left = (active.get(key) ?? 1) - 1;
        if (left <= 0) active.delete(key);
        else active.set(key, left);
      });
    },
    active: (key) => active.get(key) ?? 0,
  };
}
