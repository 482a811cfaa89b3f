// Owner ids and token subjects (the same thing for a customer): 1-128 printable ASCII
// characters without spaces. One rule for the API, the CLI and the simulator.

export const SUBJECT_MAX_LENGTH = 128;
/** Printable ASCII without spaces (length checked apart, so messages can say which is wrong). */
export const SUBJECT_PATTERN = /^[\x21-\x7e]+$/;
/** The character rule in words, for refusals ("must be …"). */
export const SUBJECT_RULE = 'printable ASCII without spaces';

export function isValidSubject(s: string): boolean {
  return s.length >= 1 && s.length <= SUBJECT_MAX_LENGTH && SUBJECT_PATTERN.test(s);
}
