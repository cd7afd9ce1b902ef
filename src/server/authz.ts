/**
 * The default authorization policy: admin and object-write surfaces are reachable from loopback
 * only; everything else is open. Kept as a pure function so a policy engine can replace it.
 */

/** Paths only loopback callers may use by default. */
const PROTECTED_PREFIXES = ['/api/', '/admin/'];

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)) return true;
  return address === '::1';
}

/** Decides whether `remoteAddress` may call `path`. */
export function isAllowed(path: string, remoteAddress: string | undefined): boolean {
  const guarded = PROTECTED_PREFIXES.some((prefix) => path.startsWith(prefix) || `${path}/` === prefix);
  return !guarded || isLoopbackAddress(remoteAddress);
}
