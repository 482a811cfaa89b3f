// CLI of the vehicle simulator: `npm run simulate -- --help`.
// Only parses flags and wires signals; the work is in run.ts.
import { randomInt } from 'node:crypto';
import { parseSimulatorArgs, USAGE } from './args.ts';
import { formatProgress, formatSummary, runSimulation } from './run.ts';
import type { SimulationOptions } from './run.ts';

async function main(): Promise<number> {
  const parsed = parseSimulatorArgs(process.argv.slice(2), process.env);
  if (parsed.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (parsed.kind === 'error') {
    for (const e of parsed.errors) process.stderr.write(`simulator: ${e}\n`);
    process.stderr.write('simulator: see --help\n');
    return 2;
  }
  const args = parsed.args;
  const err = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };

  // An unseeded run still prints its seed, so an interesting run can be replayed.
  const seed = args.seed ?? randomInt(0, 2 ** 32 - 1);
  if (!args.quiet) {
    err(
      `simulator: ${args.vehicles} vehicles, ${args.rate} records/s each, ${args.durationS} s, ` +
        `batch ${args.batch}, in-flight ${args.inflight}, seed ${seed}; gateway ${args.httpUrl} / ${args.mqttUrl}`,
    );
  }

  // First Ctrl-C: stop driving and wait for acknowledgements; second: stop waiting.
  const stop = new AbortController();
  const stopDraining = new AbortController();
  const onSigint = (): void => {
    if (!stop.signal.aborted) {
      err('simulator: interrupted; waiting for outstanding acknowledgements (Ctrl-C again to stop waiting)');
      stop.abort();
    } else if (!stopDraining.signal.aborted) {
      stopDraining.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);

  const options: SimulationOptions = {
    vehicles: args.vehicles,
    rate: args.rate,
    durationS: args.durationS,
    batch: args.batch,
    httpUrl: args.httpUrl,
    mqttUrl: args.mqttUrl,
    adminToken: args.adminToken,
    ownerId: args.ownerId,
    inflight: args.inflight,
    concurrency: args.concurrency,
    seed,
    signal: stop.signal,
    drainSignal: stopDraining.signal,
    log: err,
    ...(args.vinPrefix !== undefined ? { vinPrefix: args.vinPrefix } : {}),
    ...(args.quiet ? {} : { onProgress: (p) => err(formatProgress(p)) }),
  };
  const result = await runSimulation(options);
  process.off('SIGINT', onSigint);
  process.stdout.write(`${formatSummary(result)}\n`);
  return result.ok ? 0 : 1;
}

main().then(
  (code) => {
    // Not process.exit(): let stdout flush when it is a pipe. The unref'd
    // timer only fires if a stuck socket would otherwise keep node alive.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 3000).unref();
  },
  (e: unknown) => {
    process.stderr.write(`simulator: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
