// The SPDX 2.3 JSON SBOM of one image, from its Go binary's build information (`go version -m`):
// the image, the main module, and every dependency module with its version, purl and checksum.
// Deterministic: the creation time comes from SOURCE_DATE_EPOCH (else the Unix epoch, like the
// image's `created`), and the document namespace from the image digest, never from a clock or a
// random UUID — so an unchanged image gets a byte-identical SBOM and its push is skipped.
import type { GoBuildInfo, GoModule } from '../go/buildinfo.js';
import { digestHex } from '../image/digest.js';
import type { Platform } from '../image/types.js';

export interface SbomSubject {
  /** The image manifest's digest. */
  digest: string;
  platform: Platform;
  /** Where the image lives (`registry/repository`), for its purl, when known. */
  repository?: string;
}

export interface SbomOptions {
  /** RFC 3339 time, e.g. the image's `created`. */
  created: string;
  /** `tsko <version>`, recorded as the creating tool. */
  tool: string;
}

interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  downloadLocation: string;
  filesAnalyzed: false;
  supplier?: string;
  checksums?: Array<{ algorithm: 'SHA256'; checksumValue: string }>;
  externalRefs?: Array<{ referenceCategory: 'PACKAGE-MANAGER'; referenceType: 'purl'; referenceLocator: string }>;
  primaryPackagePurpose?: 'CONTAINER' | 'APPLICATION' | 'LIBRARY';
  comment?: string;
}

interface SpdxRelationship {
  spdxElementId: string;
  relationshipType: 'DESCRIBES' | 'CONTAINS' | 'DEPENDS_ON';
  relatedSpdxElement: string;
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  documentDescribes: string[];
  packages: SpdxPackage[];
  relationships: SpdxRelationship[];
}

export function spdxDocument(info: GoBuildInfo, subject: SbomSubject, options: SbomOptions): SpdxDocument {
  const hex = digestHex(subject.digest);
  const imageId = `SPDXRef-Package-sha256-${hex}`;
  const main = effective(info.main);
  const mainId = spdxId('SPDXRef-Package', main.path || info.path);

  const image: SpdxPackage = {
    SPDXID: imageId,
    name: subject.digest,
    versionInfo: subject.digest,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    primaryPackagePurpose: 'CONTAINER',
    externalRefs: [purlRef(ociPurl(subject))],
  };
  const mainPackage: SpdxPackage = {
    SPDXID: mainId,
    name: main.path || info.path,
    ...(main.version ? { versionInfo: main.version } : {}),
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    primaryPackagePurpose: 'APPLICATION',
    externalRefs: [purlRef(golangPurl(main.path || info.path, main.version))],
    comment: `main package ${info.path}, built with ${info.goVersion}`,
    ...checksumsOf(main),
  };
  const packages = [image, mainPackage];
  const relationships: SpdxRelationship[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: imageId },
    { spdxElementId: imageId, relationshipType: 'CONTAINS', relatedSpdxElement: mainId },
  ];
  const seen = new Set([mainId]);
  for (const dep of info.deps) {
    const mod = effective(dep);
    const id = spdxId('SPDXRef-Package', `${mod.path}-${mod.version}`);
    if (seen.has(id)) continue;
    seen.add(id);
    packages.push({
      SPDXID: id,
      name: mod.path,
      versionInfo: mod.version,
      downloadLocation: mod.version && !mod.version.startsWith('(') ? `https://proxy.golang.org/${escapeModulePath(mod.path)}/@v/${mod.version}.zip` : 'NOASSERTION',
      filesAnalyzed: false,
      primaryPackagePurpose: 'LIBRARY',
      externalRefs: [purlRef(golangPurl(mod.path, mod.version))],
      ...checksumsOf(mod),
    });
    relationships.push({ spdxElementId: mainId, relationshipType: 'DEPENDS_ON', relatedSpdxElement: id });
  }

  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `sbom-${subject.digest}`,
    documentNamespace: `http://spdx.org/spdxdocs/tsko/sha256-${hex}`,
    creationInfo: { created: options.created, creators: [`Tool: ${options.tool}`] },
    documentDescribes: [imageId],
    packages,
    relationships,
  };
}

/** The SBOM's bytes: stable key order and indentation, so equal inputs give equal digests. */
export function spdxBytes(document: SpdxDocument): Buffer {
  return Buffer.from(JSON.stringify(document, null, 2) + '\n');
}

/** ko's `--sbom-dir` file name: `<app>-<os>-<arch>[-<variant>].spdx.json`. */
export function sbomFileName(appName: string, platform: Platform): string {
  return `${[appName, platform.os, platform.architecture, platform.variant].filter(Boolean).join('-')}.spdx.json`;
}

/** A `=>` replacement is what was compiled in; a local (directory) one has no version or sum. */
function effective(mod: GoModule): GoModule {
  return mod.replace && mod.replace.version ? mod.replace : mod;
}

/** go.sum's h1: is base64 of a SHA-256 (over the module's file hashes); SPDX wants it in hex. */
function checksumsOf(mod: GoModule): Pick<SpdxPackage, 'checksums'> {
  const match = /^h1:([A-Za-z0-9+/]+=*)$/.exec(mod.sum ?? '');
  if (!match) return {};
  const bytes = Buffer.from(match[1] as string, 'base64');
  if (bytes.length !== 32) return {};
  return { checksums: [{ algorithm: 'SHA256', checksumValue: bytes.toString('hex') }] };
}

function purlRef(locator: string) {
  return { referenceCategory: 'PACKAGE-MANAGER' as const, referenceType: 'purl' as const, referenceLocator: locator };
}

function golangPurl(path: string, version: string): string {
  const segments = path.split('/').map(encodeURIComponent).join('/');
  return version && !version.startsWith('(') ? `pkg:golang/${segments}@${encodeURIComponent(version)}` : `pkg:golang/${segments}`;
}

function ociPurl(subject: SbomSubject): string {
  const name = subject.repository ? (subject.repository.split('/').pop() ?? 'image') : 'image';
  const qualifiers = [
    `arch=${encodeURIComponent(subject.platform.architecture)}`,
    `os=${encodeURIComponent(subject.platform.os)}`,
    ...(subject.repository ? [`repository_url=${encodeURIComponent(subject.repository)}`] : []),
    ...(subject.platform.variant ? [`variant=${encodeURIComponent(subject.platform.variant)}`] : []),
  ];
  return `pkg:oci/${encodeURIComponent(name)}@${encodeURIComponent(subject.digest)}?${qualifiers.join('&')}`;
}

/** SPDX IDs allow letters, digits, `.` and `-` only. */
function spdxId(prefix: string, name: string): string {
  return `${prefix}-${name.replace(/[^A-Za-z0-9.-]/g, '-')}`;
}

/** The module proxy's case encoding: an upper-case letter becomes `!` and its lower case. */
function escapeModulePath(path: string): string {
  return path.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}
