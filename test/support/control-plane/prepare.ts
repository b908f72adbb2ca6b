// `npm run kube:prepare` (run by `npm test` before the integration tests, so CI builds it once per
// machine): makes sure the control plane binaries are in the cache, building them when missing,
// and prints where they are. Exits 1 with the reason when they cannot be built.
import { controlPlaneBinaries } from './binaries.js';

const started = Date.now();
try {
  const b = await controlPlaneBinaries();
  process.stderr.write(`kube: control plane ${b.version} ready (${Math.round((Date.now() - started) / 1000)} s): ${b.apiserver}, ${b.controllerManager}, ${b.etcd}\n`);
} catch (err) {
  process.stderr.write(`kube: could not prepare the test control plane: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
