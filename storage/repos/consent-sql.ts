// The consent in force now, as SQL: one definition for every query that needs it.

/**
 * Each vehicle's latest consent event (the state in force now): vin, location_allowed,
 * co2_sharing_allowed, restricted. A vehicle with no event has no row (the defaults
 * apply). Use as `(${CURRENT_CONSENT}) c WHERE c.vin = $1`: PostgreSQL pushes a condition
 * on vin (the DISTINCT ON column) into it, so it reads that vehicle's index entries only.
 */
export const CURRENT_CONSENT = `SELECT DISTINCT ON (vin) vin, location_allowed, co2_sharing_allowed, restricted
  FROM consent_events ORDER BY vin, effective_at DESC, id DESC`;
