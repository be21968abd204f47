// wrangler's [build] command: rebuilds the Worker only when its sources changed.
import { buildWorker } from './toolchain.mjs';

buildWorker();
