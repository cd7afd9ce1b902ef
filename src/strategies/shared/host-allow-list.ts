import { z } from 'zod';

/**
 * The hosts an upstream fetch may reach, checked on its first request and again on every
 * redirect hop, so an allowed upstream cannot send hoard (and the credentials or trust that come
 * with it) to a host nobody configured.
 */
export interface HostAllowList {
  /** `host[:port]` as `URL.host` spells it (lower case, the scheme's default port omitted), or every host. */
  readonly hosts: ReadonlySet<string> | 'any';
  /** Names where the list comes from in refusals (e.g. `redirect-hosts of strategy github-releases`). */
  readonly setting: string;
}

/** A host, with `:port` when it is not the scheme's default (`example.com`, `127.0.0.1:8080`, `[::1]:8080`). */
const HOST_PORT = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** Schema of one configured allow-list entry, so a URL or a path in the list is a config error, not a silent mismatch. */
export const hostEntry = z.string().regex(HOST_PORT, 'expected host[:port] without scheme or path (e.g. objects.githubusercontent.com or 127.0.0.1:8080)');

/** Builds an allow list from configured entries (matching is case-insensitive). */
export function hostAllowList(entries: Iterable<string>, setting: string): HostAllowList {
  return { hosts: new Set([...entries].map((h) => h.toLowerCase())), setting };
}

/** Allows every host: for strategies whose first request may already go to any host the client names. */
export const ANY_HOST: HostAllowList = { hosts: 'any', setting: 'any host' };

/** True when `url`'s host may be contacted: an entry names one port, or, written without a port, every port of its host. */
export function hostAllowed(list: HostAllowList, url: URL): boolean {
  return list.hosts === 'any' || list.hosts.has(url.host.toLowerCase()) || list.hosts.has(url.hostname.toLowerCase());
}
