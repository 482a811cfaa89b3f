// The change feeds this process follows (PostgreSQL LISTEN on the control database):
// consent, ownership and erasure changes, ended grants, rotated vehicle secrets. A change
// made by this process is in force here before its API answers; the NOTIFY carries it to
// every other process. While the consent feed is down nothing cached is trusted: consent
// is read from the database, held rows are let go, and open streams recheck their terms
// every second, until the feed is back and the caches are reloaded.
import type { Logger } from 'pino';
import type { Db } from '../storage/driver/db.ts';
import { CONSENT_CHANNEL } from '../storage/repos/consent.ts';
import { GRANT_CHANNEL } from '../storage/repos/grants.ts';
import { SECRET_CHANNEL } from '../storage/repos/vehicles.ts';
import type { ConsentCache } from '../gateway/consent-cache.ts';
import type { Live } from './live.ts';

export interface FeedDeps {
  db: Db;
  consents: ConsentCache;
  live: Live;
  /** The consent, ownership or stored data of `vin` changed: drop what is cached of it, recheck its streams. */
  vehicleChanged: (vin: string) => void;
  /** A vehicle's secret was rotated (anywhere): close the old secret's MQTT sessions. */
  secretRotated: (vin: string) => void;
  log: Logger;
}

/** Follows every feed; `push` receives each one's stop as it starts (so a failed start stops those already running). */
export async function followChanges(deps: FeedDeps, push: (what: string, stop: () => unknown) => void): Promise<void> {
  const { db, consents, live, log } = deps;
  let streamRecheck: NodeJS.Timeout | null = null;
  push('stream recheck timer', () => streamRecheck && clearInterval(streamRecheck));
  push(
    'consent feed',
    await db.listen(CONSENT_CHANNEL, deps.vehicleChanged, {
      // Changes may be missed while the feed is down: trust nothing cached until it is back.
      onDown: () => {
        consents.setTrusted(false);
        live.holdRows(false);
        streamRecheck ??= setInterval(() => live.hub.invalidateAll(), 1000);
        log.warn({ event: 'consent_feed_down' }, 'consent change feed lost; reading consent from the database until it is back');
      },
      onUp: () => {
        consents.invalidateAll();
        consents.setTrusted(true);
        live.holdRows(true);
        if (streamRecheck) clearInterval(streamRecheck);
        streamRecheck = null;
        live.hub.invalidateAll();
        log.info({ event: 'consent_feed_up' }, 'consent change feed restored; cache reloaded');
      },
    }),
  );
  // Commits of other instances wake this one's stream tail.
  push('stream wake-ups', await live.listen());
  // A revoked or ended grant (payload: its id) ends the streams through it.
  push('grant feed', await db.listen(GRANT_CHANNEL, (id) => live.hub.invalidateGrant(id), { onUp: () => live.hub.invalidateAll(), role: 'stream-grants' }));
  // A secret rotated anywhere (another instance, the CLI) closes the old secret's sessions here.
  push('secret rotation feed', await db.listen(SECRET_CHANNEL, deps.secretRotated));
}
