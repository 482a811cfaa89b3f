// app/resources.ts: what was opened is closed by stage (README "Shutdown": intake, drain,
// flush, ... database), newest first within a stage, once, and a close that fails is
// logged without keeping the rest open.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Resources, STOP_STAGES } from '../../app/resources.ts';

describe('Resources', () => {
  it('closes by stage in STOP_STAGES order, newest first within a stage, whatever the order of opening', async () => {
    const r = new Resources(pino({ level: 'silent' }));
    const closed: string[] = [];
    const push = (what: string, stage: (typeof STOP_STAGES)[number]) => r.push(what, stage, () => void closed.push(what));
    // The order a start opens things in: the database first, listeners last.
    push('database', 'database');
    push('api database', 'database');
    push('writer', 'flush');
    push('broker', 'broker');
    push('intake drain', 'drain');
    push('http', 'http');
    push('stream tail', 'feeds');
    push('consent feed', 'feeds');
    push('mqtt listener', 'intake');
    push('retention', 'timers');
    await r.close();
    expect(closed).toEqual(['retention', 'mqtt listener', 'intake drain', 'writer', 'broker', 'http', 'consent feed', 'stream tail', 'api database', 'database']);
  });

  it('a failing close is logged and the others still close; closing twice closes nothing twice', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
    const r = new Resources(log);
    const closed: string[] = [];
    r.push('database', 'database', () => void closed.push('database'));
    r.push('broker', 'broker', () => {
      throw new Error('boom');
    });
    r.push('writer', 'flush', async () => {
      await new Promise((res) => setTimeout(res, 5));
      closed.push('writer');
    });
    await Promise.all([r.close(), r.close()]);
    await r.close();
    expect(closed).toEqual(['writer', 'database']);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ event: 'close_failed', what: 'broker', err: 'boom' });
  });
});
