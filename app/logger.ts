// The gateway's logger: pino, with every field that could carry a secret, a token or a
// position redacted whatever a caller passes in.
import { pino, type Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: {
      paths: ['password', 'secret', 'token', 'adminToken', '*.password', '*.secret', '*.token', 'req.headers.authorization', 'location', '*.location', 'latitude', 'longitude', '*.latitude', '*.longitude', 'payload', '*.payload'],
      censor: '[redacted]',
    },
  });
}
