// What `gcloud run deploy` does for a service that does not exist yet, and for
// --allow-unauthenticated: create the service (Admin API v2, `POST …/services?serviceId=`, a
// long-running Operation) with the image and the container port, and grant roles/run.invoker to
// allUsers through the service's own IAM policy (read-modify-write with the policy's etag).
import { TskoError } from '../errors.js';
import { CloudRunApi, isCloudRunApiError, locationPath, servicePath, type IamPolicy, type Operation, type RunService } from './cloudrun-api.js';

export const INVOKER_ROLE = 'roles/run.invoker';
export const PUBLIC_MEMBER = 'allUsers';

export interface NewService {
  project: string;
  region: string;
  service: string;
  image: string;
  /** The container's port (Cloud Run sets PORT to it); gcloud's default is 8080. */
  port: number;
  /** Names the new (first) revision, for a tagged create. */
  revision?: string;
  tag?: string;
}

/** Cloud Run service IDs: lowercase letters, digits and hyphens, a letter first, no hyphen last, at most 49. */
const SERVICE_ID = /^[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?$/;

export function checkServiceId(service: string): void {
  if (!SERVICE_ID.test(service)) {
    throw new TskoError('CLOUDRUN', `"${service}" cannot name a Cloud Run service (lowercase letters, digits and hyphens, a letter first, at most 49)`, {
      hint: 'name the service with --service (or dev.cloudrun.service)',
    });
  }
}

/** POSTs the service; resolves to the create Operation (or undefined when someone created it meanwhile: 409 ALREADY_EXISTS). */
export async function createService(api: CloudRunApi, spec: NewService): Promise<Operation | undefined> {
  checkServiceId(spec.service);
  const body: RunService = {
    client: 'tsko',
    template: {
      ...(spec.revision ? { revision: spec.revision } : {}),
      containers: [{ image: spec.image, ports: [{ containerPort: spec.port }] }],
    },
    ...(spec.tag && spec.revision
      ? {
          traffic: [
            { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 },
            { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: spec.revision, percent: 0, tag: spec.tag },
          ],
        }
      : {}),
  };
  try {
    return await api.call<Operation>('POST', `${locationPath(spec.project, spec.region)}/services`, { serviceId: spec.service }, body);
  } catch (err) {
    if (isCloudRunApiError(err, 409) && err.rpcStatus === 'ALREADY_EXISTS') return undefined;
    throw err;
  }
}

/**
 * Grants roles/run.invoker to allUsers on the service, as `--allow-unauthenticated` does; true
 * when it changed the policy, false when the binding was there already. A concurrent policy
 * change (409 ABORTED on the etag) is retried once from a fresh read.
 */
export async function allowUnauthenticated(api: CloudRunApi, project: string, region: string, service: string): Promise<boolean> {
  const resource = servicePath(project, region, service);
  for (let attempt = 1; ; attempt++) {
    const policy = await api.call<IamPolicy>('GET', `${resource}:getIamPolicy`);
    const bindings = structuredClone(policy.bindings ?? []);
    const invoker = bindings.find((b) => b.role === INVOKER_ROLE && b.condition === undefined);
    if (invoker?.members?.includes(PUBLIC_MEMBER)) return false;
    if (invoker) invoker.members = [...(invoker.members ?? []), PUBLIC_MEMBER];
    else bindings.push({ role: INVOKER_ROLE, members: [PUBLIC_MEMBER] });
    try {
      await api.call<IamPolicy>('POST', `${resource}:setIamPolicy`, {}, { policy: { ...policy, bindings } });
      return true;
    } catch (err) {
      if (attempt < 2 && isCloudRunApiError(err, 409)) continue;
      throw err;
    }
  }
}

/** The command that opens a private service, for the hint after a create without --allow-unauthenticated. */
export function openCommand(project: string, region: string, service: string): string {
  return `gcloud run services add-iam-policy-binding ${service} --region=${region} --project=${project} --member=${PUBLIC_MEMBER} --role=${INVOKER_ROLE}`;
}
