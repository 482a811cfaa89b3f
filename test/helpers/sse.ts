// A Server-Sent Events client for tests, on node:http so a test can stop reading (slow
// consumer) and see every byte: events, comments, the end of the response.
import http from 'node:http';

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
  /** Test-process clock when the event was parsed. */
  at: number;
}

export interface SseClient {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** The body of a refused request (problem+json). */
  readonly body: string;
  readonly events: SseEvent[];
  /** Comment lines (without the colon), with their arrival time. */
  readonly comments: { text: string; at: number }[];
  /** Resolves when the response ends (or the connection closes). */
  readonly ended: Promise<void>;
  readonly isEnded: boolean;
  /** Records (event: record) parsed as JSON. */
  records(): { id: string; data: any }[];
  /** Waits until `pred` holds over the events, or rejects after timeoutMs. */
  until(pred: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Stops reading from the socket (the server's buffer for us fills up). */
  pause(): void;
  resume(): void;
  close(): void;
}

export function openSse(port: number, path: string, token: string | null, headers: Record<string, string> = {}, onEvent?: (e: SseEvent) => void): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string> = { accept: 'text/event-stream', ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    const req = http.get({ host: '127.0.0.1', port, path, headers: h, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      const events: SseEvent[] = [];
      const comments: { text: string; at: number }[] = [];
      let waiters: (() => void)[] = [];
      let buf = '';
      let body = '';
      let isEnded = false;
      const notify = () => {
        const w = waiters;
        waiters = [];
        for (const f of w) f();
      };
      const ended = new Promise<void>((r) => {
        const done = () => {
          isEnded = true;
          notify();
          r();
        };
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      });
      res.setEncoding('utf8');
      const isStream = res.statusCode === 200;
      res.on('data', (chunk: string) => {
        if (!isStream) {
          body += chunk;
          return;
        }
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const at = Date.now();
          let id: string | undefined;
          let event = 'message';
          const data: string[] = [];
          let any = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push({ text: line.slice(1).trim(), at });
            else if (line.startsWith('id: ')) {
              id = line.slice(4);
              any = true;
            } else if (line.startsWith('event: ')) {
              event = line.slice(7);
              any = true;
            } else if (line.startsWith('data: ')) {
              data.push(line.slice(6));
              any = true;
            }
          }
          if (any) {
            const e = { id, event, data: data.join('\n'), at };
            events.push(e);
            onEvent?.(e);
          }
        }
        notify();
      });
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        get body() {
          return body;
        },
        events,
        comments,
        ended,
        get isEnded() {
          return isEnded;
        },
        records: () => events.filter((e) => e.event === 'record').map((e) => ({ id: e.id!, data: JSON.parse(e.data) })),
        until(pred, timeoutMs = 5000) {
          return new Promise<void>((ok, fail) => {
            const t = setTimeout(() => fail(new Error(`SSE: condition not met in ${timeoutMs} ms (${events.length} events, ended=${isEnded})`)), timeoutMs);
            const check = () => {
              if (pred(events)) {
                clearTimeout(t);
                ok();
              } else if (isEnded) {
                clearTimeout(t);
                fail(new Error(`SSE: stream ended before the condition held (${events.length} events; last: ${JSON.stringify(events[events.length - 1])})`));
              } else waiters.push(check);
            };
            check();
          });
        },
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => {
          req.destroy();
        },
      };
      if (!isStream) res.on('end', () => resolve(client));
      else resolve(client);
    });
  });
}
