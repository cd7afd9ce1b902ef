import { createHash } from 'node:crypto';
import type { StatusReport, StatusTable } from './data.js';

/** Seconds between refreshes, by the script (JSON) or, without JavaScript, by a meta refresh. */
export const REFRESH_SECONDS = 5;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe in HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#1d2430;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:18px;margin:0}header span{opacity:.75}
main{padding:8px 24px 24px}section{margin-top:16px}h2{font-size:15px;margin:0 0 6px}
.note{color:#667;font-size:12px;margin:0 0 4px}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e4e7ec;vertical-align:top}
th{background:#eef1f5;font-weight:600}td{font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
tr.good td:first-child{border-left:4px solid #2f9e44}tr.warn td:first-child{border-left:4px solid #f08c00}
tr.bad td:first-child{border-left:4px solid #e03131}.empty{color:#667;font-style:italic}`;

/**
 * The refresh: fetches the JSON variant and rebuilds every table body with textContent (never
 * HTML), so a repository name is text whichever way the page was drawn. On failure the page
 * stays as it is and the next tick tries again.
 */
const SCRIPT = `(function(){
var d=document;
function cell(tag,text){var e=d.createElement(tag);e.textContent=text;return e}
function draw(t){var s=d.getElementById(t.id);if(!s)return;var b=s.querySelector('tbody');var rows=[];
if(!t.rows.length){var r=d.createElement('tr');var c=cell('td',t.empty);c.colSpan=t.columns.length;c.className='empty';r.appendChild(c);rows.push(r)}
t.rows.forEach(function(row){var r=d.createElement('tr');if(row.cls)r.className=row.cls;row.cells.forEach(function(x){r.appendChild(cell('td',x))});rows.push(r)});
b.replaceChildren.apply(b,rows);var n=s.querySelector('.note');if(n)n.textContent=t.note||''}
function tick(){fetch('?format=json',{cache:'no-store',headers:{accept:'application/json'}}).then(function(r){if(!r.ok)throw new Error(r.status);return r.json()}).then(function(j){
j.tables.forEach(draw);d.getElementById('generated').textContent=j.generatedAt;var h=d.documentElement;h.dataset.refreshes=String(Number(h.dataset.refreshes||0)+1)}).catch(function(){}).then(function(){setTimeout(tick,${REFRESH_SECONDS * 1000})})}
setTimeout(tick,${REFRESH_SECONDS * 1000});
})();`;

/** The Content-Security-Policy of the page: only its own inline script, and requests to itself. */
export const STATUS_CSP = `default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

function renderTable(table: StatusTable): string {
  const head = table.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = table.rows.length
    ? table.rows.map((row) => `<tr${row.cls ? ` class="${escapeHtml(row.cls)}"` : ''}>${row.cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n')
    : `<tr><td class="empty" colspan="${table.columns.length}">${escapeHtml(table.empty)}</td></tr>`;
  return `<section id="${escapeHtml(table.id)}"><h2>${escapeHtml(table.title)}</h2><p class="note">${escapeHtml(table.note ?? '')}</p>
<table><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table></section>`;
}

/**
 * The status page: plain server-rendered tables that read fully without JavaScript (a meta
 * refresh inside <noscript> reloads them), plus a small inline script that refreshes them in
 * place from `?format=json`. Everything shown is escaped.
 */
export function renderStatusPage(report: StatusReport): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hoard status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<noscript><meta http-equiv="refresh" content="${REFRESH_SECONDS}"></noscript>
<style>${STYLE}</style></head>
<body><header><h1>hoard</h1><span>status at <time id="generated">${escapeHtml(report.generatedAt)}</time></span><span>up ${escapeHtml(String(report.uptimeSeconds))} s</span><span><a href="?format=json" style="color:#9cf">JSON</a></span></header>
<main>
${report.tables.map(renderTable).join('\n')}
</main>
<script>${SCRIPT}</script>
</body></html>
`;
}
