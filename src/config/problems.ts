import type { z } from 'zod';
import type { HclAttribute, HclPosition } from './hcl.js';
import { describeIssues, positionWithin } from './issues.js';

/** Where a problem is: a place in the file, an environment variable, or the file as a whole. */
export type ProblemPlace = HclPosition | { env: string; value: string } | undefined;

/** Collects problems and renders them `file:line:col: …`, in file order. */
export class Problems {
  private readonly list: Array<{ place: ProblemPlace; text: string; order: number }> = [];

  constructor(private readonly file: string) {}

  add(place: ProblemPlace, text: string): void {
    this.list.push({ place, text, order: this.list.length });
  }

  get size(): number {
    return this.list.length;
  }

  /** `file:line:col` of a position, for messages that name a second place. */
  at(pos: HclPosition): string {
    return `${this.file}:${pos.line}:${pos.column}`;
  }

  messages(): string[] {
    const rank = (p: ProblemPlace) => (p === undefined ? [Infinity, Infinity] : 'env' in p ? [Infinity - 1, 0] : [p.line, p.column]);
    return [...this.list]
      .sort((a, b) => {
        const [al, ac] = rank(a.place);
        const [bl, bc] = rank(b.place);
        return al! - bl! || ac! - bc! || a.order - b.order;
      })
      .map(({ place, text }) => {
        if (place === undefined) return `${this.file}: ${text}`;
        if ('env' in place) return `environment variable ${place.env}=${JSON.stringify(place.value)}: ${text}`;
        return `${this.at(place)}: ${text}`;
      });
  }
}

/** What validating one block (or the top level) needs to place and word its problems. */
export interface ValidationScope {
  /** `cache disk`, `log block`, or undefined at top level. */
  where: string | undefined;
  attrs: Map<string, HclAttribute>;
  /** Where the block starts: for a missing attribute or a problem with the whole block. */
  blockAt: HclPosition | undefined;
  /** Attributes that came from `HOARD_*`/`CACHEW_*` instead of the file. */
  injected: Map<string, { env: string; value: string }>;
  /** The attribute names the schema knows, for "unknown attribute" messages. */
  valid: string[];
}

/** Reports a failed parse, each issue at the exact place of the offending value. */
export function reportIssues(error: z.ZodError, scope: ValidationScope, problems: Problems): void {
  const given = (attr: string) => scope.attrs.has(attr) || scope.injected.has(attr);
  for (const issue of describeIssues(error, given)) {
    const attrName = issue.path.length ? String(issue.path[0]) : undefined;
    const prefix = [scope.where, issue.field && !issue.unknownAttribute ? issue.field : undefined].filter(Boolean).join(': ');
    if (issue.unknownAttribute !== undefined) {
      const attr = scope.attrs.get(issue.unknownAttribute);
      const valid = scope.valid.length ? `valid: ${validList(scope.valid)}` : 'this block takes no attributes';
      problems.add(attr ?? scope.blockAt, `${issue.text}${scope.where ? ` in ${scope.where}` : ''} (${valid})${misplacedAttributeHint(scope.where, issue.unknownAttribute)}`);
      continue;
    }
    const text = prefix ? `${prefix}: ${issue.text}` : issue.text;
    const injected = attrName !== undefined && !scope.attrs.has(attrName) ? scope.injected.get(attrName) : undefined;
    if (injected) {
      problems.add(injected, text);
      continue;
    }
    const attr = attrName !== undefined ? scope.attrs.get(attrName) : undefined;
    problems.add(attr ? positionWithin(attr.valueAt, issue.path.slice(1)) : scope.blockAt, text);
  }
}

/** Attributes cachew users put in the wrong block, with where they belong. */
const MISPLACED: Record<string, Record<string, string>> = {
  's3 block': { bucket: 'the global s3 block configures the S3 client; a bucket belongs in cache s3 { bucket = ... } or metadata s3 { bucket = ... }' },
  'cache s3': {
    endpoint: 'the S3 endpoint belongs in the global s3 { endpoint = ... } block, shared by cache s3 and metadata s3',
    region: 'the S3 region belongs in the global s3 { region = ... } block, shared by cache s3 and metadata s3',
  },
  'strategy artifactory': { target: 'the target URL is the block label: strategy artifactory "https://example.jfrog.io" {} (cachew ignores this attribute silently)' },
};

function misplacedAttributeHint(where: string | undefined, attribute: string): string {
  const hint = where ? MISPLACED[where]?.[attribute] : undefined;
  return hint ? `; ${hint}` : '';
}

export function validList(names: Iterable<string>): string {
  return [...names].sort().join(', ');
}
