// ISO 3779 vehicle identification number: 17 characters of 0-9 and A-Z except I, O, Q
// (excluded to avoid confusion with 1 and 0).
export const VIN_PATTERN = /^[A-HJ-NPR-Z0-9]{17}$/;

export function isValidVin(v: unknown): v is string {
  return typeof v === 'string' && VIN_PATTERN.test(v);
}

/** The VIN rule in words, for refusals ("must be …"). */
export const VIN_RULE = 'an ISO 3779 VIN: 17 characters of 0-9 and A-Z without I, O, Q';
