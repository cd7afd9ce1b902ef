/**
 * The canonical spelling of a header name, as Go's net/http prints it and cachew's CLI shows it:
 * each dash-separated word capitalised (`content-type` → `Content-Type`, `etag` → `Etag`). The
 * client receives names lower-cased (HTTP/1.1 and fetch do not keep case), so `get` and `stat`
 * print them back in this form, which scripts written against cachew match on.
 */
export function canonicalHeaderName(name: string): string {
  return name
    .split('-')
    .map((word) => (word ? word[0]!.toUpperCase() + word.slice(1).toLowerCase() : word))
    .join('-');
}

/** `Name: value` lines, sorted by name, in canonical spelling. */
export function headerLines(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([name, value]) => [canonicalHeaderName(name), value] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}: ${value}\n`)
    .join('');
}
