/**
 * What a ref check compares: the refs upstream advertises that the mirror's fetch refspecs map
 * into the mirror, and where upstream's HEAD points, against the mirror's own refs and HEAD.
 *
 * The rule (docs/decisions.md "Ref freshness"): a ref counts when a fetch of the mirror would
 * write it, so a difference the check reports is one a fetch removes. Peeled `^{}` entries are
 * skipped (they follow from the tag object, whose id is compared). Upstream refs no refspec maps
 * are ignored, and so are mirror refs outside every refspec destination (a fetch with --prune
 * never touches them). A mirror made by `clone --mirror` fetches `+refs/*:refs/*`, so every
 * namespace upstream advertises counts, `refs/pull/*` and `refs/changes/*` included.
 */

/** A ref listing: ref name → object id, and HEAD's symref target when upstream has one. */
export interface RefListing {
  refs: Map<string, string>;
  head: string | undefined;
}

/** One fetch refspec, e.g. `+refs/heads/*:refs/remotes/origin/*` or the negative `^refs/pull/*`. */
export interface Refspec {
  src: string;
  dst: string | undefined;
  negative: boolean;
}

/** Parses `git ls-remote --symref` output; peeled `^{}` entries and the HEAD id line are dropped. */
export function parseLsRemote(output: string): RefListing {
  const refs = new Map<string, string>();
  let head: string | undefined;
  for (const line of output.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab === -1) continue;
    const left = line.slice(0, tab);
    const name = line.slice(tab + 1);
    if (left.startsWith('ref: ')) {
      if (name === 'HEAD') head = left.slice('ref: '.length);
      continue;
    }
    if (name.endsWith('^{}') || !name.startsWith('refs/')) continue;
    refs.set(name, left);
  }
  return { refs, head };
}

/** Parses `git for-each-ref --format='%(objectname) %(refname)'` output. */
export function parseForEachRef(output: string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of output.split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) refs.set(line.slice(space + 1), line.slice(0, space));
  }
  return refs;
}

/** Parses the values of `remote.<name>.fetch`, one per line. */
export function parseRefspecs(output: string): Refspec[] {
  const specs: Refspec[] = [];
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('^')) {
      specs.push({ src: line.slice(1), dst: undefined, negative: true });
      continue;
    }
    const body = line.startsWith('+') ? line.slice(1) : line;
    const colon = body.indexOf(':');
    // A refspec without a destination only fills FETCH_HEAD: it maps nothing into the mirror.
    if (colon === -1) continue;
    specs.push({ src: body.slice(0, colon), dst: body.slice(colon + 1), negative: false });
  }
  return specs;
}

/** The part of `ref` the `*` of `pattern` matched, or undefined (an exact pattern matches itself: ''). */
function globMatch(pattern: string, ref: string): string | undefined {
  const star = pattern.indexOf('*');
  if (star === -1) return pattern === ref ? '' : undefined;
  const prefix = pattern.slice(0, star);
  const suffix = pattern.slice(star + 1);
  if (ref.length < prefix.length + suffix.length || !ref.startsWith(prefix) || !ref.endsWith(suffix)) return undefined;
  return ref.slice(prefix.length, ref.length - suffix.length);
}

/** Where a fetch with `specs` writes upstream's `ref` in the mirror, or undefined when it does not. */
function mapToMirror(specs: Refspec[], ref: string): string | undefined {
  if (specs.some((s) => s.negative && globMatch(s.src, ref) !== undefined)) return undefined;
  for (const spec of specs) {
    if (spec.negative || spec.dst === undefined) continue;
    const matched = globMatch(spec.src, ref);
    if (matched !== undefined) return spec.dst.includes('*') ? spec.dst.replace('*', matched) : spec.dst;
  }
  return undefined;
}

/** True when some refspec writes into `ref` of the mirror (so --prune would delete it if upstream lacks it). */
function inMirrorNamespace(specs: Refspec[], ref: string): boolean {
  return specs.some((s) => !s.negative && s.dst !== undefined && globMatch(s.dst, ref) !== undefined);
}

/**
 * Differences between upstream's advertisement and the mirror, as short human-readable lines
 * (empty when the mirror is up to date). `limit` bounds the list: the first few are enough to log.
 */
export function advertisementDifferences(upstream: RefListing, mirror: RefListing, specs: Refspec[], limit = 5): string[] {
  const out: string[] = [];
  // HEAD counts only when a fetch can make the mirror's follow it (a branch the mirror holds under
  // the same name); anything else would leave the mirror stale for ever.
  const head = upstream.head;
  if (head !== undefined && head.startsWith('refs/heads/') && mapToMirror(specs, head) === head && head !== mirror.head) out.push(`HEAD -> ${head} (mirror: ${mirror.head ?? 'none'})`);
  const expected = new Map<string, string>();
  for (const [ref, id] of upstream.refs) {
    const local = mapToMirror(specs, ref);
    if (local !== undefined) expected.set(local, id);
  }
  for (const [ref, id] of expected) {
    if (out.length >= limit) return out;
    const have = mirror.refs.get(ref);
    if (have !== id) out.push(have === undefined ? `new ${ref}` : `moved ${ref}`);
  }
  for (const ref of mirror.refs.keys()) {
    if (out.length >= limit) return out;
    if (!expected.has(ref) && inMirrorNamespace(specs, ref)) out.push(`deleted ${ref}`);
  }
  return out;
}
