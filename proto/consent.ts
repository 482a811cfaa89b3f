// The owner's privacy choices for a vehicle, as the contract speaks of them: the shape
// storage records, the gateway filters by and the API answers with. Types only.

export interface ConsentFlags {
  /** Processing of the vehicle's location (GDPR Art. 6(1)(a) consent; objection Art. 21). `true` = allowed. */
  location: boolean;
  /** Sharing of OBFCM data with the authorities ((EU) 2021/392 lets the owner refuse it). `true` = allowed. */
  co2Sharing: boolean;
  /**
   * Restriction of processing (GDPR Art. 18): data may still be stored (Art. 18(2)) but
   * is processed for no one but the owner.
   */
  restricted: boolean;
}

/** A consent state and when it came into force. */
export interface ConsentPeriod extends ConsentFlags {
  /** Start of this state, ms since epoch; 0 for the defaults before any event. */
  sinceMs: number;
}
