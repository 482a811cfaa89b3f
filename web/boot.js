// The modules' side of early.js: the session, the overview's reads and their early
// answers. The gateway runs early.js inline in the page before any module loads; where
// it did not (the page served some other way), it is loaded here, and the early reads
// then start only now.
if (!globalThis.cardataBoot) await import('./early.js');

// Set by early.js, run by now.
export const { SESSION, currentSession, DAY, DEFAULT_SPAN_MS, CHART_FIELDS, latestPath, consentPath, chartsPath, trackPath, overviewVin, takeEarly, takeBootTime } = /** @type {CardataBoot} */ (globalThis.cardataBoot);
