// The entry point of `npm start`: reads the configuration, starts the gateway (app/),
// prints how to reach it, and stops it in order on SIGTERM or SIGINT.
import { pathToFileURL } from 'node:url';
import { loadConfig, type Config } from './config/index.ts';
import { createLogger, startGateway, type RunningGateway } from './app/gateway.ts';

function banner(config: Config, gw: RunningGateway): string {
  const host = (h: string) => (h === '0.0.0.0' ? '127.0.0.1' : h);
  const lines = [
    '',
    'cardata-gateway is running',
    `  instance: ${gw.instance}`,
    `  storage:  ${gw.storage}`,
    ...(gw.mqttPort !== null ? [`  MQTT:     mqtt://${host(config.mqtt.host)}:${gw.mqttPort}`] : ['  MQTT:     plain port closed (client certificates required)']),
    ...(gw.mqttsPort !== null ? [`  MQTTS:    mqtts://${host(config.mqtt.host)}:${gw.mqttsPort}${config.tls?.clientCaFile ? ' (client certificates: CN = VIN)' : ''}`] : []),
    `  HTTP:     ${gw.https ? 'https' : 'http'}://${host(config.http.host)}:${gw.httpPort}  (portal at /, GET /readyz, docs at /docs)`,
    ...(gw.oidcIssuer ? [`  sign-in:  ${gw.oidcIssuer}  (embedded OpenID Provider; accounts: POST /v1/admin/accounts)`] : []),
    ...(config.oidc.issuer ? [`  tokens of: ${config.oidc.issuer}`] : []),
  ];
  if (!config.adminToken) lines.push(`  admin token (generated, shown once): ${gw.adminToken}`);
  lines.push(
    '  try the simulator:',
    `    ADMIN_TOKEN=${config.adminToken ? '<your ADMIN_TOKEN>' : gw.adminToken} npm run simulate -- --vehicles 10 --rate 1 --duration 30 --http http://127.0.0.1:${gw.httpPort} --mqtt mqtt://127.0.0.1:${gw.mqttPort}`,
    '',
  );
  return lines.join('\n') + '\n';
}

async function run(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  let gw: RunningGateway;
  try {
    gw = await startGateway(config, log);
  } catch (err) {
    console.error(`cardata-gateway: cannot start: ${(err as Error).message}`);
    process.exit(1);
  }
  process.stdout.write(banner(config, gw));
  let stopping = false;
  const stop = (signal: string) => {
    log.info({ event: 'signal', signal }, 'signal received');
    // Repeated while stopping (a wrapper that relays the signal again, e.g. tsx when the
    // child's acknowledgement is late on a loaded machine): the stop under way goes on.
    // With `once`, the second one would meet the default action and kill the process mid-stop.
    if (stopping) return;
    stopping = true;
    gw.close().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ event: 'shutdown_failed', err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void run();
