// HTTP errors as RFC 9457 problem details with a stable `code`.
import type { AccessMode } from '../proto/grants.ts';
import type { Refusal } from '../access/grants.ts';

export type ApiErrorCode =
  | 'API_ERR_VALIDATION'
  | 'API_ERR_INVALID_VIN'
  | 'API_ERR_INVALID_ID'
  | 'API_ERR_UNKNOWN_RECIPIENT'
  /** A grant's `fields` names no field of the catalogue (a typo): the detail names it. */
  | 'API_ERR_UNKNOWN_FIELD'
  /** A grant's `fields` names a field of a category the grant does not cover. */
  | 'API_ERR_FIELD_OUTSIDE_CATEGORIES'
  /** A grant's `fields` names a field of a category shared whole only (connectivity's). */
  | 'API_ERR_FIELD_NOT_SELECTABLE'
  /** A grant's `fields` names none of the fields of one of its categories. */
  | 'API_ERR_CATEGORY_WITHOUT_FIELDS'
  | 'API_ERR_RANGE_TOO_LONG'
  /** A webhook's URL is refused: not https, credentials in it, or an address in a refused range (docs/webhooks.md). */
  | 'API_ERR_WEBHOOK_URL'
  /** `names` is neither `catalogue` nor `vss` (README "Data that explains itself"). */
  | 'API_ERR_UNKNOWN_NAMES'
  | 'API_ERR_UNAUTHORIZED'
  | 'API_ERR_TOKEN_EXPIRED'
  | 'API_ERR_TOKEN_INVALID'
  | 'API_ERR_TOKEN_ALGORITHM'
  | 'API_ERR_TOKEN_NOT_YET_VALID'
  | 'API_ERR_TOKEN_ISSUER'
  | 'API_ERR_TOKEN_AUDIENCE'
  | 'API_ERR_TOKEN_CLAIMS'
  | 'API_ERR_TOKEN_REVOKED'
  | 'API_ERR_TOKEN_TYPE'
  | 'API_ERR_IDP_UNAVAILABLE'
  | 'API_ERR_FORBIDDEN'
  | 'API_ERR_RESTRICTED'
  | 'API_ERR_RATE_LIMITED'
  | 'API_ERR_TOO_MANY_EXPORTS'
  | 'API_ERR_REQUEST_TIMEOUT'
  | 'API_ERR_NOT_FOUND'
  | 'API_ERR_INVALID_CURSOR'
  | 'API_ERR_CURSOR_EXPIRED'
  | 'API_ERR_TOO_MANY_STREAMS'
  | 'API_ERR_CONFLICT'
  | 'API_ERR_BODY_TOO_LARGE'
  | 'API_ERR_UNSUPPORTED_MEDIA_TYPE'
  | 'API_ERR_NOT_READY'
  | 'API_ERR_UNAVAILABLE'
  | 'API_ERR_INTERNAL';

export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: ApiErrorCode;
  constructor(statusCode: number, code: ApiErrorCode, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.name = 'ApiError';
  }
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ApiErrorCode;
  detail: string;
  instance?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function problem(status: number, code: ApiErrorCode, detail: string, instance?: string): Problem {
  const p: Problem = { type: `https://cardata-gateway.dev/problems/${code.toLowerCase().replace(/_/g, '-')}`, title: TITLES[status] ?? 'Error', status, code, detail };
  if (instance !== undefined) p.instance = instance;
  return p;
}

const RESTRICTED = "the owner has restricted the processing of this vehicle's data (GDPR Art. 18)";

/**
 * A read refused by the access policy (access/grants.ts), as every route answers it: the
 * owner's restriction of processing (GDPR Art. 18) is 403 API_ERR_RESTRICTED, a grant that
 * does not allow this way of reading (`mode`) 403 API_ERR_FORBIDDEN, anything else (no
 * such grant or vehicle for this caller: nothing to learn) `notFound()`. With `grantReads`
 * (the default) the restriction's detail says that reads through grants are suspended.
 */
export function refusalError(refusal: Refusal | undefined, how: { mode: AccessMode; notFound: () => ApiError; grantReads?: boolean }): ApiError {
  if (refusal === 'RESTRICTED') return new ApiError(403, 'API_ERR_RESTRICTED', how.grantReads === false ? RESTRICTED : `${RESTRICTED}: reads through grants are suspended`);
  if (refusal === 'MODE_NOT_GRANTED') {
    return new ApiError(403, 'API_ERR_FORBIDDEN', how.mode === 'history' ? 'this grant does not allow reading history (access: stream only)' : 'this grant does not allow streaming (access: history only)');
  }
  return how.notFound();
}
