// Server-Sent Events framing, as the gateway's streams send it: a pure function (no I/O,
// no browser globals), so it is tested on its own.

/**
 * Parses SSE text (WHATWG HTML §9.2.6) into events; returns the unparsed rest.
 * @param {string} buf
 * @param {(ev: SseEvent) => void} onEvent
 * @returns {string}
 */
export function parseEvents(buf, onEvent) {
  let i;
  while ((i = buf.search(/\r?\n\r?\n|\r\r/)) >= 0) {
    const block = buf.slice(0, i);
    // Matches: buf.search found a separator at i.
    const sep = /** @type {RegExpExecArray} */ (/^\r?\n\r?\n|^\r\r/.exec(buf.slice(i)))[0];
    buf = buf.slice(i + sep.length);
    /** @type {SseEvent} */
    const ev = { id: null, event: 'message', data: '' };
    /** @type {string[]} */
    const data = [];
    for (const line of block.split(/\r?\n|\r/)) {
      if (line === '' || line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const k = c < 0 ? line : line.slice(0, c);
      const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (k === 'id') ev.id = v;
      else if (k === 'event') ev.event = v;
      else if (k === 'data') data.push(v);
    }
    if (data.length === 0 && ev.id === null) continue;
    ev.data = data.join('\n');
    onEvent(ev);
  }
  return buf;
}
