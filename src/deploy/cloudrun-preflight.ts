// The Cloud Run target's check before the first build: the project and region answer (the
// region is one the project's Cloud Run lists), the Admin API is enabled, the credentials are
// accepted, the service exists (or the first deploy will create it: say which), and the caller
// holds the permissions the deploy needs (testIamPermissions on the service, which Cloud Run
// answers from the project's policy when the service does not exist yet). Emits one `preflight`
// event; a failure is a TskoError of one line whose hint is the fix.
import { TskoError } from '../errors.js';
import type { EventBus } from '../events.js';
import { CloudRunApi, CloudRunApiError, isCloudRunApiError, servicePath, type RunService } from './cloudrun-api.js';
import { checkServiceId } from './cloudrun-create.js';
import { NoCredentialsError } from './gcp-token.js';

export interface PreflightSettings {
  project: string;
  region: string;
  service: string;
  allowUnauthenticated: boolean;
  noTraffic: boolean;
}

export interface PreflightFinding {
  /** Whether the service is there now (false: the first deploy creates it). */
  exists: boolean;
}

interface Location {
  name?: string;
  locationId?: string;
}

const MAX_LOCATION_PAGES = 20;

export async function cloudRunPreflight(api: CloudRunApi, settings: PreflightSettings, events: EventBus): Promise<PreflightFinding> {
  const started = performance.now();
  const emit = (ok: boolean, message: string, reason?: string) =>
    events.emit({ type: 'preflight', target: 'cloudrun', ok, ms: Math.round(performance.now() - started), ...(reason ? { reason } : {}), message });
  try {
    const finding = await check(api, settings);
    const where = `project ${settings.project}, region ${settings.region}`;
    emit(
      true,
      finding.exists
        ? `service ${settings.service} exists in ${where}; the caller may update it`
        : `service ${settings.service} does not exist in ${where}: the first deploy creates it${settings.allowUnauthenticated ? ' (public: --allow-unauthenticated)' : ' (private; --allow-unauthenticated makes it public)'}`,
    );
    return finding;
  } catch (err) {
    if (err instanceof TskoError && err.code !== 'ABORTED') emit(false, err.message, reasonOf(err));
    throw err;
  }
}

function reasonOf(err: TskoError): string {
  if (err instanceof PreflightError) return err.reason;
  if (err instanceof NoCredentialsError) return 'NO_CREDENTIALS';
  if (err instanceof CloudRunApiError) return err.reason ?? err.rpcStatus ?? `HTTP ${err.status}`;
  return err.code;
}

class PreflightError extends TskoError {
  readonly reason: string;
  constructor(reason: string, message: string, hint: string) {
    super('CLOUDRUN', message, { hint });
    this.reason = reason;
  }
}

async function check(api: CloudRunApi, settings: PreflightSettings): Promise<PreflightFinding> {
  const { project, region, service } = settings;
  checkServiceId(service);
  // One token lookup first (ADC, gcloud), then the three questions at once: one round trip, not three.
  await api.token();
  const path = servicePath(project, region, service);
  const iam = settings.allowUnauthenticated ? ['run.services.getIamPolicy', 'run.services.setIamPolicy'] : [];
  const [located, found, tested] = await Promise.allSettled([
    checkRegion(api, project, region),
    api.call<RunService>('GET', path).then(
      () => true,
      (err: unknown) => {
        if (isCloudRunApiError(err, 404)) return false;
        throw err;
      },
    ),
    api.call<{ permissions?: string[] }>('POST', `${path}:testIamPermissions`, {}, { permissions: ['run.services.get', 'run.services.update', 'run.services.create', ...iam] }),
  ]);
  // The answers in the order a user fixes them: project and API, region, the service, permissions.
  if (located.status === 'rejected') throw located.reason;
  if (found.status === 'rejected') throw found.reason;
  const exists = found.value;
  if (!exists && settings.noTraffic) {
    throw new PreflightError('NOT_FOUND', `Cloud Run service "${service}" does not exist in project ${project}, region ${region}, and --no-traffic cannot create it (its first revision takes all traffic)`, 'deploy once without --no-traffic');
  }
  if (tested.status === 'rejected') {
    // A permission the resource type cannot test (400) proves nothing either way: the deploy will say.
    if (isCloudRunApiError(tested.reason, 400)) return { exists };
    throw tested.reason;
  }
  const granted = tested.value.permissions ?? [];
  const needed = [...(exists ? ['run.services.get', 'run.services.update'] : ['run.services.create']), ...iam];
  const missing = needed.filter((p) => !granted.includes(p));
  if (missing.length > 0) {
    const identity = await api.identity();
    const role = missing.some((p) => p.endsWith('IamPolicy')) ? 'roles/run.admin' : 'roles/run.developer';
    throw new PreflightError(
      'PERMISSION_DENIED',
      `${identity} lacks ${missing.join(', ')} on Cloud Run service "${service}" in project ${project}, region ${region}${exists ? '' : ' (needed to create it)'}`,
      `grant it ${role}: gcloud projects add-iam-policy-binding ${project} --member=user:EMAIL --role=${role}`,
    );
  }
  return { exists };
}

/** The region must be one this project's Cloud Run lists (`GET /v1/projects/P/locations`, as `gcloud run regions list`). */
async function checkRegion(api: CloudRunApi, project: string, region: string): Promise<void> {
  const ids: string[] = [];
  let pageToken: string | undefined;
  try {
    for (let page = 0; page < MAX_LOCATION_PAGES; page++) {
      const answer = await api.call<{ locations?: Location[]; nextPageToken?: string }>('GET', `/v1/projects/${encodeURIComponent(project)}/locations`, pageToken ? { pageToken } : {});
      for (const location of answer.locations ?? []) ids.push(location.locationId ?? location.name?.split('/').pop() ?? '');
      pageToken = answer.nextPageToken || undefined;
      if (!pageToken) break;
    }
  } catch (err) {
    // A caller without run.locations.list may still deploy: the service calls below will tell.
    if (isCloudRunApiError(err, 403) && err.reason === undefined) return;
    throw err;
  }
  if (!ids.includes(region)) {
    const near = ids.filter((id) => id.split('-')[0] === region.split('-')[0]);
    throw new PreflightError('LOCATION_NOT_FOUND', `"${region}" is not a Cloud Run region of project ${project}`, `pass --region with one of: ${ids.length > 0 ? (near.length > 0 ? near : ids).slice(0, 8).join(', ') : '(none listed)'} (gcloud run regions list)`);
  }
}
