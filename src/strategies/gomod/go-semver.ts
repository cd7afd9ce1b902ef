/**
 * The parts of Go's semantic versions (golang.org/x/mod/semver and module's pseudo-versions)
 * that serving modules from git needs: which tags are versions, their order, and the
 * pseudo-versions that name untagged commits.
 */

/** A parsed canonical version `vMAJOR.MINOR.PATCH[-PRERELEASE]` (no build metadata). */
export interface GoVersion {
  major: number;
  minor: number;
  patch: number;
  /** Pre-release identifiers ('' when none). */
  prerelease: string;
}

const CANONICAL = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$/;

/** Parses a canonical version (what a tag must be to count as a module version). */
export function parseCanonical(version: string): GoVersion | undefined {
  const m = CANONICAL.exec(version);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease: m[4] ?? '' };
}

function comparePrerelease(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '') return 1; // a release sorts after its pre-releases
  if (b === '') return -1;
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i]!;
    const q = y[i]!;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return p.length !== q.length ? p.length - q.length : p < q ? -1 : 1;
    if (pn) return -1; // numeric identifiers sort before alphanumeric ones
    if (qn) return 1;
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
}

/** Semver precedence of two canonical versions (negative, 0, positive). */
export function compareVersions(a: string, b: string): number {
  const x = parseCanonical(a);
  const y = parseCanonical(b);
  if (!x || !y) throw new Error(`not canonical: ${!x ? a : b}`);
  return x.major - y.major || x.minor - y.minor || x.patch - y.patch || comparePrerelease(x.prerelease, y.prerelease);
}

/** x/mod module.IsPseudoVersion's pattern: base, optional `0.`, 14-digit UTC time, revision. */
const PSEUDO = /^v[0-9]+\.(?:0\.0-|\d+\.\d+-(?:[^+]*\.)?0\.)(\d{14})-([A-Za-z0-9]+)(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/** Whether a version is a pseudo-version (names a commit, not a tag). */
export function isPseudoVersion(version: string): boolean {
  return PSEUDO.test(version);
}

/** The timestamp (`yyyymmddhhmmss`, UTC) and revision prefix a pseudo-version names. */
export function pseudoVersionParts(version: string): { time: string; revision: string } | undefined {
  const m = PSEUDO.exec(version);
  return m ? { time: m[1]!, revision: m[2]! } : undefined;
}

/** A commit time as a pseudo-version timestamp (UTC `yyyymmddhhmmss`). */
export function pseudoTimestamp(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/**
 * x/mod module.PseudoVersion: `vMAJOR.0.0-TIME-REV` with no base tag, `vX.Y.(Z+1)-0.TIME-REV`
 * after release vX.Y.Z, `vX.Y.Z-PRE.0.TIME-REV` after pre-release vX.Y.Z-PRE.
 */
export function pseudoVersion(major: number, base: string | undefined, unixSeconds: number, commit: string): string {
  const rest = `${pseudoTimestamp(unixSeconds)}-${commit.slice(0, 12)}`;
  const v = base ? parseCanonical(base) : undefined;
  if (!v) return `v${major}.0.0-${rest}`;
  if (v.prerelease) return `v${v.major}.${v.minor}.${v.patch}-${v.prerelease}.0.${rest}`;
  return `v${v.major}.${v.minor}.${v.patch + 1}-0.${rest}`;
}

/** The major version number of a canonical or pseudo version (`v2.1.0` → 2). */
export function majorOf(version: string): number {
  return Number(/^v(\d+)\./.exec(version)?.[1] ?? NaN);
}
