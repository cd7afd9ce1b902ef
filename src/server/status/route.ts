import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../../http/router.js';
import type { Router } from '../../http/router.js';
import { gatherStatus, type StatusSources } from './data.js';
import { STATUS_CSP, renderStatusPage } from './page.js';

/** The status page's path: the root of the main listener. */
export const STATUS_PATH = '/';

/** True when the caller asked for the JSON variant (`?format=json`). */
function wantsJson(query: URLSearchParams): boolean {
  return query.get('format') === 'json';
}

/**
 * Mounts the status page at `GET /` (HTML; `?format=json` for the data). Trusted callers only,
 * by the route rule the default policy applies (loopback unless configured otherwise), rather
 * than by the first-segment set of authz.ts: that set also judges the target path of proxied
 * absolute-form requests, where `/` is the root of every proxied site.
 */
export function mountStatusPage(router: Router, sources: StatusSources): void {
  router.on(
    'GET',
    STATUS_PATH,
    async (req: IncomingMessage, res: ServerResponse, _params, query) => {
      const report = await gatherStatus(sources);
      if (wantsJson(query)) {
        res.setHeader('cache-control', 'no-store');
        return sendJson(res, 200, report);
      }
      const body = renderStatusPage(report);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        'content-security-policy': STATUS_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
    { trustedOnly: () => true },
  );
}
