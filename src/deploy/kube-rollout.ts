// When a Deployment counts as rolled out, decided exactly as `kubectl rollout status` decides it
// (kubectl pkg/polymorphichelpers/rollout_status.go), and why it is stuck, read from its pods the
// way a person would read `kubectl describe pod`: image pulls, crash loops, unschedulable pods.

export interface Condition {
  type: string;
  status?: string;
  reason?: string;
  message?: string;
}

export interface ContainerSpec {
  name: string;
  image?: string;
}

export interface Deployment {
  metadata: { name: string; namespace?: string; uid?: string; generation?: number; resourceVersion?: string; annotations?: Record<string, string> };
  spec: {
    replicas?: number;
    paused?: boolean;
    selector?: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string> }; spec: { containers: ContainerSpec[] } };
  };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: Condition[];
  };
}

export type RolloutStatus = { state: 'done'; message: string } | { state: 'waiting'; message: string } | { state: 'failed'; message: string };

/**
 * kubectl's DeploymentStatusViewer. `minGeneration` is the generation the PATCH answered with, so a
 * stale read of the object before the patch never counts as rolled out.
 */
export function rolloutStatus(deployment: Deployment, minGeneration = 0): RolloutStatus {
  const name = deployment.metadata.name;
  const generation = deployment.metadata.generation ?? 0;
  const status = deployment.status ?? {};
  if (generation < minGeneration || generation > (status.observedGeneration ?? 0)) {
    return { state: 'waiting', message: 'Waiting for deployment spec update to be observed...' };
  }
  const progressing = status.conditions?.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return { state: 'failed', message: `deployment "${name}" exceeded its progress deadline` };
  }
  const updated = status.updatedReplicas ?? 0;
  const replicas = status.replicas ?? 0;
  const available = status.availableReplicas ?? 0;
  if (deployment.spec.replicas !== undefined && updated < deployment.spec.replicas) {
    return { state: 'waiting', message: `Waiting for deployment "${name}" rollout to finish: ${updated} out of ${deployment.spec.replicas} new replicas have been updated...` };
  }
  if (replicas > updated) {
    return { state: 'waiting', message: `Waiting for deployment "${name}" rollout to finish: ${replicas - updated} old replicas are pending termination...` };
  }
  if (available < updated) {
    return { state: 'waiting', message: `Waiting for deployment "${name}" rollout to finish: ${available} of ${updated} updated replicas are available...` };
  }
  return { state: 'done', message: `deployment "${name}" successfully rolled out` };
}

interface ContainerState {
  waiting?: { reason?: string; message?: string };
  terminated?: { reason?: string; message?: string; exitCode?: number };
  running?: object;
}

export interface Pod {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { containers?: ContainerSpec[] };
  status?: {
    phase?: string;
    conditions?: Condition[];
    containerStatuses?: Array<{ name: string; ready?: boolean; restartCount?: number; state?: ContainerState; lastState?: ContainerState }>;
  };
}

export interface PodProblem {
  pod: string;
  container?: string;
  reason: string;
  message: string;
  /** A state that does not cure itself: the rollout is reported failed without waiting longer. */
  fatal: boolean;
  /** Its last log lines explain it (a crash). */
  wantsLogs: boolean;
}

const FATAL_WAITING = new Set(['ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'CrashLoopBackOff', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/** The first problem among the pods that run `image` (the new revision's pods). */
export function diagnosePods(pods: Pod[], image: string): PodProblem | undefined {
  const mine = pods.filter((pod) => (pod.spec?.containers ?? []).some((c) => c.image === image));
  const problems: PodProblem[] = [];
  for (const pod of mine) {
    const name = pod.metadata.name;
    for (const status of pod.status?.containerStatuses ?? []) {
      const waiting = status.state?.waiting;
      if (waiting?.reason && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') {
        const last = status.lastState?.terminated;
        const exited = last ? ` (last exit code ${last.exitCode ?? '?'}${last.reason ? `, ${last.reason}` : ''})` : '';
        problems.push({
          pod: name,
          container: status.name,
          reason: waiting.reason,
          message: `${waiting.message ?? waiting.reason}${exited}`,
          fatal: FATAL_WAITING.has(waiting.reason),
          wantsLogs: waiting.reason === 'CrashLoopBackOff' || last !== undefined,
        });
      }
      const terminated = status.state?.terminated;
      if (terminated && terminated.exitCode !== 0) {
        problems.push({
          pod: name,
          container: status.name,
          reason: terminated.reason ?? 'Error',
          message: `exited with code ${terminated.exitCode ?? '?'}${terminated.message ? `: ${terminated.message}` : ''}`,
          fatal: false,
          wantsLogs: true,
        });
      }
    }
    if (pod.status?.phase === 'Pending') {
      const scheduled = pod.status.conditions?.find((c) => c.type === 'PodScheduled');
      if (scheduled?.status === 'False') {
        problems.push({ pod: name, reason: scheduled.reason ?? 'Unschedulable', message: `Pending: ${scheduled.message ?? 'not scheduled'}`, fatal: false, wantsLogs: false });
      } else if (!(pod.status.containerStatuses ?? []).some((s) => s.state?.waiting)) {
        problems.push({ pod: name, reason: 'Pending', message: 'Pending', fatal: false, wantsLogs: false });
      }
    }
    if (pod.status?.phase === 'Running') {
      const notReady = (pod.status.containerStatuses ?? []).find((s) => s.state?.running && s.ready === false);
      if (notReady) {
        problems.push({ pod: name, container: notReady.name, reason: 'NotReady', message: `container ${notReady.name} is running but not ready (readiness probe)`, fatal: false, wantsLogs: true });
      }
    }
  }
  // The most telling first: what will not cure itself, then crashes, then the rest.
  problems.sort((a, b) => Number(b.fatal) - Number(a.fatal) || Number(b.wantsLogs) - Number(a.wantsLogs));
  return problems[0];
}

export interface RolloutBlocker {
  /** The Deployment's own reason: DeploymentPaused, FailedCreate (ReplicaFailure), ProgressDeadlineExceeded. */
  reason: string;
  message: string;
  hint?: string;
}

/**
 * What stops a rollout for good, read from the Deployment alone, so it is reported the moment the
 * controller says so instead of at the timeout: a paused Deployment (its new image waits for
 * `kubectl rollout resume`), pods its ReplicaSet cannot create (ReplicaFailure: a Pod Security
 * violation, a quota), a progress deadline passed.
 */
export function rolloutBlocker(deployment: Deployment, minGeneration = 0): RolloutBlocker | undefined {
  const name = deployment.metadata.name;
  const namespace = deployment.metadata.namespace ?? 'default';
  if (deployment.spec.paused) {
    return {
      reason: 'DeploymentPaused',
      message: `deployment "${name}" is paused: the new image is set but will not roll out until it is resumed`,
      hint: `kubectl rollout resume deployment/${name} -n ${namespace}`,
    };
  }
  const generation = deployment.metadata.generation ?? 0;
  if (generation < minGeneration || generation > (deployment.status?.observedGeneration ?? 0)) return undefined;
  const conditions = deployment.status?.conditions ?? [];
  const failure = conditions.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (failure) {
    return {
      reason: failure.reason ?? 'ReplicaFailure',
      message: `deployment "${name}" cannot create pods: ${oneLine(failure.message ?? failure.reason ?? 'ReplicaFailure')}`,
      hint: /PodSecurity/.test(failure.message ?? '')
        ? `make the pod template meet namespace "${namespace}"'s Pod Security level (securityContext), or relax its pod-security.kubernetes.io/enforce label`
        : `kubectl describe replicaset -n ${namespace} -l ${Object.entries(deployment.spec.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || `app=${name}`}`,
    };
  }
  const progressing = conditions.find((c) => c.type === 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return { reason: 'ProgressDeadlineExceeded', message: `deployment "${name}" exceeded its progress deadline` };
  }
  return undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
