// What the gateway opened, in one list: a start that fails halfway and an orderly stop
// close it the same way. Each resource names its stage of the stop; stages close in the
// order below (README "Shutdown": MQTT intake → drain → flush → HTTP → database), and
// within a stage the newest first. A new resource is pushed once, where it opens.
import type { Logger } from 'pino';

/** The stages of a stop, in the order they run. */
export const STOP_STAGES = [
  /** Timers and watches that start work: retention, the CRL watch. */
  'timers',
  /** Listeners stop accepting connections (MQTT, MQTTS). */
  'intake',
  /** Messages in flight are acknowledged or left to be resent; ingest stops. */
  'drain',
  /** The batch writer flushes what it holds. */
  'flush',
  /** The broker closes its sessions. */
  'broker',
  /** HTTP: open streams end, then the server; the metrics listener. */
  'http',
  /** Sign-in's feeds and timers. */
  'sign-in',
  /** Change feeds (LISTEN) and the stream tail. */
  'feeds',
  /** Pools and the embedded database. */
  'database',
] as const;
export type StopStage = (typeof STOP_STAGES)[number];

export class Resources {
  private readonly items: { what: string; stage: StopStage; close: () => unknown }[] = [];
  private closing: Promise<void> | null = null;
  constructor(private readonly log: Logger) {}

  /** `close` runs once, in `stage`'s turn; a close that fails is logged and the rest still close. */
  push(what: string, stage: StopStage, close: () => unknown): void {
    this.items.push({ what, stage, close });
  }

  /** Closes everything pushed, stage by stage, newest first within a stage. Safe to call twice. */
  close(): Promise<void> {
    return (this.closing ??= this.closeAll());
  }

  private async closeAll(): Promise<void> {
    for (const stage of STOP_STAGES) {
      const due = this.items.filter((it) => it.stage === stage).reverse();
      for (const it of due) {
        try {
          await it.close();
        } catch (err) {
          this.log.warn({ event: 'close_failed', what: it.what, err: (err as Error).message }, `could not close ${it.what}`);
        }
      }
    }
    this.items.length = 0;
  }
}
