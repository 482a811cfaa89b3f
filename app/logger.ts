// The gateway's logger: pino, with every field that could carry a secret, a token or a
// position redacted whatever a caller passes in, and, last, anything JWT-shaped taken out
// of every line it writes (a token that reached a message or an error's text).
import { pino, type DestinationStream, type Logger } from 'pino';
import { scrubJwts } from '../api/log-redaction.ts';

/** Fields (top level and one level down) whose values are secrets: never written. */
const SECRET_FIELDS = [
  'password',
  'secret',
  'token',
  'adminToken',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'idToken',
  'id_token',
  'id_token_hint',
  'client_secret',
  'code_verifier',
  'authorization',
  'cookie',
];

/** `destination`: where the lines go (default stdout), e.g. a stream a test reads. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: {
      paths: [
        ...SECRET_FIELDS,
        ...SECRET_FIELDS.map((f) => `*.${f}`),
        'req.headers.authorization',
        'req.headers.cookie',
        'location',
        '*.location',
        'latitude',
        'longitude',
        '*.latitude',
        '*.longitude',
        'payload',
        '*.payload',
      ],
      censor: '[redacted]',
    },
    hooks: { streamWrite: scrubJwts },
  };
  return destination ? pino(options, destination) : pino(options);
}
