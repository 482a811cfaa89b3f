#!/usr/bin/env node
// `npx cardata-gateway <command>`: the operator CLI (cli/index.ts), run through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../cli/index.ts');
