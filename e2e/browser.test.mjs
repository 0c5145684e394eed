// End-to-end: a real browser (Debian's headless Chromium, driven by
// playwright-core) in front of nginx + ngx_http_xray in front of a stand-in
// for a Lambda Function URL.  What only a browser can show:
//   * a cross-origin fetch() that sends X-Amzn-Trace-Id needs a preflight
//     that allows the header: xray_cors adds it to the upstream's policy;
//   * the page can read X-Amzn-Trace-Id in a response (Expose-Headers);
//   * Server-Sent Events read with fetch() + ReadableStream arrive event by
//     event even with proxy_buffering on (xray_sse), and resume after
//     Last-Event-ID when the page reconnects;
//   * controls: with xray_cors off the browser blocks the same fetch(), and
//     with xray_sse off the same stream arrives in one burst at its end.
//
// Run:  node --test e2e/browser.test.mjs      (after `make module`)
// Env:  as e2e/lib.mjs (E2E_MODULE, E2E_NGINX, E2E_CHROMIUM, E2E_KEEP);
//       E2E_PORT_BASE (default 3300; ports are taken from BASE..3399).
//
// e2e/lib.mjs runs nginx, Chromium, the daemon sink, every bounded wait and
// a watchdog that ends the run after 120 s.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO, MODULE, STEP_LIMIT_MS, withTimeout, waitFor, segments, badDatagrams,
         startServers, startNginx, state, guard, checkBinaries, openPage, tearDown,
         errorLines } from './lib.mjs';

const PORT_BASE = Number(process.env.E2E_PORT_BASE || 3300);
const PORT_MAX = 3399;

const SSE_INTERVAL_MS = 300;   // the upstream writes an event this often
const SSE_PER_CONNECTION = 4;  // ... and closes the stream after this many
const CLIENT_PARENT = '53995c3f42cd8ad8';
const RUN_LIMIT_MS = 120_000;  // the whole file, whatever happens
// waits for an event (a segment at the daemon, a stream's end) end with it;
// this only bounds one that never comes, generously for a loaded machine
const EVENT_WAIT_MS = 10_000;

// ---------------------------------------------------------------------------
// small helpers

function newRoot() {
    const epoch = Math.floor(Date.now() / 1000).toString(16).padStart(8, '0');
    return `1-${epoch}-${crypto.randomBytes(12).toString('hex')}`;
}

const traceHeader = (root, sampled = '1') =>
    `Root=${root};Parent=${CLIENT_PARENT};Sampled=${sampled}`;

// every X-Amzn-Trace-Id line of a recorded request, exactly as received
const traceLines = (rec) => rec.rawHeaders
    .filter(([k]) => k.toLowerCase() === 'x-amzn-trace-id').map(([, v]) => v);

// ---------------------------------------------------------------------------
// the stand-in for a Lambda Function URL: records every request

const requests = [];          // { i, method, path, headers, rawHeaders, at }
const sseConnections = [];    // { rec, lastEventId, written: [{id, at}], ended, clientLeft }
let pageOrigin = '';

function upstreamHandler(req, res) {
    const url = new URL(req.url, 'http://upstream');
    const raw = [];
    for (let k = 0; k < req.rawHeaders.length; k += 2) raw.push([req.rawHeaders[k], req.rawHeaders[k + 1]]);
    const rec = {
        i: requests.length, method: req.method, path: url.pathname,
        headers: req.headers, rawHeaders: raw, at: Date.now(),
    };
    requests.push(rec);

    // the upstream's own CORS policy: this page's origin, nothing else
    const cors = {};
    if (req.headers.origin === pageOrigin) {
        cors['Access-Control-Allow-Origin'] = pageOrigin;
        cors.Vary = 'Origin';
    }

    if (req.method === 'OPTIONS') {
        // a preflight: the upstream allows what it knows of, never the
        // trace header (that is what xray_cors is for)
        if (cors['Access-Control-Allow-Origin']) {
            cors['Access-Control-Allow-Methods'] = 'GET';
            cors['Access-Control-Allow-Headers'] =
                url.pathname === '/sse' ? 'Content-Type, Last-Event-ID' : 'Content-Type';
        }
        res.writeHead(204, cors);
        res.end();
        return;
    }

    if (req.method === 'GET' && url.pathname === '/api') {
        const body = JSON.stringify({ ok: true, path: url.pathname,
                                      trace: traceLines(rec) });
        res.writeHead(200, { ...cors, 'Content-Type': 'application/json',
                             'Content-Length': Buffer.byteLength(body) });
        res.end(body);
        return;
    }

    if (req.method === 'GET' && url.pathname === '/sse') {
        const last = Number.parseInt(req.headers['last-event-id'] ?? '0', 10) || 0;
        const conn = { rec, lastEventId: req.headers['last-event-id'] ?? null,
                       written: [], ended: false, clientLeft: false };
        sseConnections.push(conn);
        res.writeHead(200, { ...cors, 'Content-Type': 'text/event-stream',
                             'Cache-Control': 'no-cache' });
        let next = last + 1;
        const write = () => {
            if (conn.clientLeft) return;
            res.write(`id: ${next}\ndata: event ${next}\n\n`);
            conn.written.push({ id: next, at: Date.now() });
            next++;
            if (conn.written.length >= SSE_PER_CONNECTION) {
                clearInterval(timer);
                conn.ended = true;
                res.end();
            }
        };
        const timer = setInterval(write, SSE_INTERVAL_MS);
        res.on('close', () => {
            clearInterval(timer);
            if (!conn.ended) conn.clientLeft = true;
        });
        write();
        return;
    }

    res.writeHead(404, { ...cors, 'Content-Type': 'text/plain' });
    res.end('not found\n');
}

// ---------------------------------------------------------------------------
// the page (another origin): fetch() helpers that page.evaluate calls

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>ngx_http_xray e2e</title>
<script>
window.e2e = {
  // one fetch(); never throws: says how it ended
  async api(url, headers, timeoutMs) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    try {
      const r = await fetch(url, { headers, cache: 'no-store', signal: ctrl.signal });
      const body = await r.text();
      return { ok: true, status: r.status, body,
               traceResponse: r.headers.get('x-amzn-trace-id') };
    } catch (e) {
      return { ok: false, name: e.name, message: e.message, timedOut: ctrl.signal.aborted };
    } finally {
      clearTimeout(timer);
    }
  },

  // an event stream read with fetch() + ReadableStream; each event with the
  // time it reached the page (t: ms since the fetch started; at: epoch ms,
  // the clock the upstream stamps its writes with); stopAfter: abort
  // after that many events, as a page that navigates away or loses the
  // network would
  async sse(url, headers, stopAfter, timeoutMs) {
    const ctrl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; ctrl.abort(); }, timeoutMs);
    const t0 = performance.now();
    const out = { events: [], chunks: 0, ended: false, aborted: false, error: null };
    try {
      const r = await fetch(url, { headers, cache: 'no-store', signal: ctrl.signal });
      out.status = r.status;
      out.contentType = r.headers.get('content-type');
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      read: for (;;) {
        const { value, done } = await reader.read();
        if (done) { out.ended = true; break; }
        const now = performance.now();
        out.chunks++;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\\n\\n')) >= 0) {
          const ev = { t: Math.round(now - t0), at: performance.timeOrigin + now };
          for (const line of buf.slice(0, cut).split('\\n')) {
            const colon = line.indexOf(':');
            if (colon > 0) ev[line.slice(0, colon)] = line.slice(colon + 1).trim();
          }
          buf = buf.slice(cut + 2);
          out.events.push(ev);
          if (stopAfter && out.events.length >= stopAfter) {
            out.aborted = true;
            ctrl.abort();
            break read;
          }
        }
      }
    } catch (e) {
      if (!out.aborted) out.error = timedOut ? 'timed out' : e.name + ': ' + e.message;
    } finally {
      clearTimeout(timer);
    }
    return out;
  },
};
</script>
<p>ngx_http_xray end-to-end test page</p>
`;

function pageHandler(req, res) {
    if (req.url === '/' || req.url === '/index.html') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8',
                             'Cache-Control': 'no-store' });
        res.end(PAGE);
    } else {
        res.writeHead(404);
        res.end();
    }
}

// ---------------------------------------------------------------------------
// nginx: this test's server block (e2e/lib.mjs writes the rest)

const SERVER = `        xray on;
        xray_segment_name e2e-edge;
        proxy_buffering on;        # deliberately: xray_sse must cope with it

        # what is under test
        location / {
            xray_cors on;
            xray_sse on;
            proxy_pass http://lambda;
        }

        # control: no CORS help, the browser must block the trace header
        location /nocors/ {
            xray_cors off;
            xray_sse on;
            proxy_pass http://lambda/;
        }

        # control: no SSE help, proxy_buffering holds the stream back
        location /buffered/ {
            xray_cors on;
            xray_sse off;
            proxy_pass http://lambda/;
        }
`;

// ---------------------------------------------------------------------------
// set-up and tear-down

const run = { ports: {} };
const watchdog = guard(RUN_LIMIT_MS);

before(async () => {
    const t0 = Date.now();
    checkBinaries();
    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ngx-xray-e2e-'));

    run.ports = await startServers(PORT_BASE, PORT_MAX, upstreamHandler, pageHandler);
    pageOrigin = `http://127.0.0.1:${run.ports.page}`;
    run.nginx = `http://127.0.0.1:${run.ports.nginx}`;

    await startNginx(run.ports, 'e2e/browser.test.mjs', SERVER);

    run.page = await openPage(pageOrigin);
    console.log(`started in ${Date.now() - t0} ms: Chromium ${state.browser.version()}, `
                + `nginx ${run.nginx} (module ${path.relative(REPO, MODULE)}), page ${pageOrigin}, `
                + `upstream 127.0.0.1:${run.ports.upstream}, daemon udp 127.0.0.1:${run.ports.daemon}, `
                + `dir ${state.dir}`);
});

after(() => tearDown(watchdog));

// page.evaluate of one of the page's helpers, bounded twice: in the page
// (AbortController) and here
const api = (url, headers = {}, timeoutMs = 8_000) => withTimeout(
    run.page.evaluate(([u, h, ms]) => window.e2e.api(u, h, ms), [url, headers, timeoutMs]),
    timeoutMs + 2_000, `fetch(${url}) in the page`);
const sse = (url, headers, stopAfter = 0, timeoutMs = 8_000) => withTimeout(
    run.page.evaluate(([u, h, n, ms]) => window.e2e.sse(u, h, n, ms), [url, headers, stopAfter, timeoutMs]),
    timeoutMs + 2_000, `stream ${url} in the page`);

const since = (mark) => requests.slice(mark);
const PARENT_RE = /^Root=(1-[0-9a-f]{8}-[0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])$/;

// the one X-Amzn-Trace-Id a request carried, checked against the browser's
function assertForwarded(rec, root, what) {
    const lines = traceLines(rec);
    assert.equal(lines.length, 1, `${what}: exactly one X-Amzn-Trace-Id upstream, got ${JSON.stringify(lines)}`);
    const m = PARENT_RE.exec(lines[0]);
    assert.ok(m, `${what}: forwarded header has the form Root=..;Parent=<16 hex>;Sampled=1: ${lines[0]}`);
    assert.equal(m[1], root, `${what}: the browser's Root is kept`);
    assert.notEqual(m[2], CLIENT_PARENT, `${what}: Parent is the proxy's own id, not the browser's`);
    assert.equal(m[3], '1', `${what}: sampled (rule rate 1)`);
    return m[2];
}

// events reached the page as the upstream wrote them, not held back and
// flushed together: over the stream, the page's arrivals spread over at least
// half the time the upstream took to write them, and every event reached the
// page before the upstream had written two more (one interval of slack for a
// busy machine)
function assertIncremental(t, events, conn, what) {
    const byId = new Map(conn.written.map((w) => [String(w.id), w.at]));
    const lat = events.map((e) => Math.round(e.at - byId.get(e.id)));
    t.diagnostic(`${what}: written by the upstream at +${conn.written.map((w) => w.at - conn.written[0].at).join(', +')} ms; `
                 + `latency upstream write -> page: ${lat.join(', ')} ms`);
    const wrote = byId.get(events.at(-1).id) - byId.get(events[0].id);
    const spread = Math.round(events.at(-1).at - events[0].at);
    assert.ok(spread >= wrote / 2,
              `${what}: arrivals at the page spread over ${spread} ms, the upstream wrote over ${wrote} ms`);
    for (let k = 0; k + 2 < conn.written.length && k < events.length; k++) {
        const next2 = conn.written.find((w) => w.id === Number(events[k].id) + 2);
        if (!next2) continue;
        assert.ok(events[k].at < next2.at,
                  `${what}: event ${events[k].id} reached the page before the upstream wrote event ${next2.id}`
                  + ` (arrived ${Math.round(events[k].at - next2.at)} ms after)`);
    }
}

// ---------------------------------------------------------------------------
// the tests, in order

const opts = { timeout: STEP_LIMIT_MS };
const api1 = {};

test('fetch() from another origin with X-Amzn-Trace-Id through xray_cors on succeeds', opts, async (t) => {
    api1.root = newRoot();
    api1.mark = requests.length;
    const r = await api(`${run.nginx}/api`, { 'X-Amzn-Trace-Id': traceHeader(api1.root) });
    t.diagnostic(`page ${pageOrigin} -> ${run.nginx}/api: ${JSON.stringify(r)}`);
    assert.equal(r.ok, true, `the browser let the fetch() through: ${r.name}: ${r.message}`);
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).ok, true, 'the upstream JSON reached the page');
});

test("the upstream saw the browser's preflight ask for x-amzn-trace-id, then the GET", opts, () => {
    const seen = since(api1.mark).filter((q) => q.path === '/api');
    assert.deepEqual(seen.map((q) => q.method), ['OPTIONS', 'GET'], 'one preflight, then the request');
    const pre = seen[0];
    assert.match(pre.headers['access-control-request-headers'] ?? '', /(^|,)\s*x-amzn-trace-id\s*(,|$)/i,
                 'Access-Control-Request-Headers names x-amzn-trace-id');
    assert.equal(pre.headers.origin, pageOrigin, "the preflight comes from the page's origin");
    assert.equal(traceLines(pre).length, 0, 'the preflight carries no trace header (none invented)');
});

test('the upstream got exactly one X-Amzn-Trace-Id: same Root, the proxy\'s Parent, Sampled=1', opts, (t) => {
    const get = since(api1.mark).find((q) => q.method === 'GET' && q.path === '/api');
    assert.ok(get, 'the GET reached the upstream');
    api1.parent = assertForwarded(get, api1.root, 'GET /api');
    t.diagnostic(`sent ${traceHeader(api1.root)}; upstream got ${traceLines(get)[0]}`);
});

test("the daemon got the proxy's segment: the browser's trace, parent, and the forwarded Parent as upstream call", opts, async (t) => {
    const traceId = api1.root;
    const doc = await waitFor(() => segments.find((s) => s.trace_id === traceId && !s.in_progress),
                              EVENT_WAIT_MS, `a segment for ${traceId} at the daemon`);
    t.diagnostic(`segment ${doc.name} ${doc.id}: parent_id ${doc.parent_id}, `
                 + `upstream call ${doc.subsegments?.[0]?.id}, status ${doc.http?.response?.status}`);
    assert.equal(doc.parent_id, CLIENT_PARENT, "under the browser's Parent");
    assert.equal(doc.http?.response?.status, 200);
    assert.equal(doc.subsegments?.[0]?.id, api1.parent, 'its upstream call is the Parent the upstream received');
    assert.deepEqual(badDatagrams, [], 'every datagram is a {"format":"json","version":1} document');
});

test('page script can read X-Amzn-Trace-Id of a response (Sampled=? answer, Access-Control-Expose-Headers)', opts, async (t) => {
    const root = newRoot();
    const r = await api(`${run.nginx}/api`, { 'X-Amzn-Trace-Id': traceHeader(root, '?') });
    t.diagnostic(`response X-Amzn-Trace-Id as the page sees it: ${r.traceResponse}`);
    assert.equal(r.ok, true, `fetch() succeeded: ${r.name}: ${r.message}`);
    assert.equal(r.traceResponse, `Root=${root};Sampled=1`, 'readable by the page and the proxy\'s decision');
});

const sse1 = {};

test('SSE via fetch()+ReadableStream, proxy_buffering on + xray_sse on: events arrive one by one; the page aborts after 2', opts, async (t) => {
    sse1.root = newRoot();
    sse1.mark = sseConnections.length;
    const r = await sse(`${run.nginx}/sse`, { 'X-Amzn-Trace-Id': traceHeader(sse1.root) }, 2);
    sse1.result = r;
    t.diagnostic(`events at the page (ms after fetch): ${r.events.map((e) => `id ${e.id} @${e.t}`).join(', ')}`);
    assert.equal(r.error, null, 'the stream opened and read without error');
    assert.equal(r.status, 200);
    assert.match(r.contentType ?? '', /^text\/event-stream/);
    assert.deepEqual(r.events.map((e) => e.id), ['1', '2'], 'events 1 and 2, then the page aborted');
    assert.equal(r.aborted, true);
    const conn = sseConnections[sse1.mark];
    assert.ok(conn, 'the upstream got the stream request');
    assertForwarded(conn.rec, sse1.root, 'GET /sse');
    assert.equal(conn.lastEventId, null, 'a first connection has no Last-Event-ID');
    assertIncremental(t, r.events, conn, 'first stream');
    // the browser left while the upstream still had events to write: it had
    // events 1 and 2 before the stream ended, so they were not buffered
    await waitFor(() => conn.clientLeft || conn.ended, EVENT_WAIT_MS, 'the end of the first stream at the upstream');
    t.diagnostic(`upstream wrote ${conn.written.length} of ${SSE_PER_CONNECTION} events before the browser left`);
    assert.equal(conn.clientLeft, true, 'the upstream saw the browser leave before its stream ended');
    assert.ok(conn.written.length < SSE_PER_CONNECTION);
});

test('SSE reconnect with Last-Event-ID: 2: the upstream gets it and the stream resumes at 3, incrementally', opts, async (t) => {
    assert.ok(sse1.result?.events?.length, 'needs the first stream');
    const last = sse1.result.events.at(-1).id;
    sse1.root2 = newRoot();
    const mark = sseConnections.length;
    const r = await sse(`${run.nginx}/sse`,
                        { 'X-Amzn-Trace-Id': traceHeader(sse1.root2), 'Last-Event-ID': last });
    t.diagnostic(`events at the page (ms after fetch): ${r.events.map((e) => `id ${e.id} @${e.t}`).join(', ')}; `
                 + `${r.chunks} reads`);
    assert.equal(r.error, null, `the reconnection was allowed and read without error`);
    const conn = sseConnections[mark];
    assert.ok(conn, 'the upstream got the reconnection');
    assert.equal(conn.lastEventId, last, `the upstream received Last-Event-ID: ${last}`);
    assertForwarded(conn.rec, sse1.root2, 'GET /sse (reconnection)');
    const want = Array.from({ length: SSE_PER_CONNECTION }, (_, k) => String(Number(last) + 1 + k));
    assert.deepEqual(r.events.map((e) => e.id), want, `resumed right after ${last}`);
    assert.equal(r.ended, true, 'the upstream closed the stream and the page saw its end');
    assertIncremental(t, r.events, conn, 'reconnection');
});

test('the daemon got the reconnection\'s segment: an SSE stream resumed after Last-Event-ID 2', opts, async (t) => {
    assert.ok(sse1.root2, 'needs the reconnection');
    const doc = await waitFor(() => segments.find((s) => s.trace_id === sse1.root2 && !s.in_progress),
                              EVENT_WAIT_MS, `the reconnection's segment at the daemon`);
    t.diagnostic(`annotations ${JSON.stringify(doc.annotations)}, metadata ${JSON.stringify(doc.metadata)}`);
    assert.equal(doc.annotations?.sse, true, 'annotated as a stream');
    assert.equal(doc.annotations?.sse_reconnect, true, 'a reconnection');
    assert.equal(doc.metadata?.nginx?.last_event_id, '2', 'from event 2');
    assert.ok(segments.some((s) => s.trace_id === sse1.root2 && s.in_progress),
              'an in_progress document went out while it streamed');
});

test('control: xray_sse off, proxy_buffering on: the same stream reaches the page in one burst at its end', opts, async (t) => {
    const root = newRoot();
    const mark = sseConnections.length;
    const r = await sse(`${run.nginx}/buffered/sse`, { 'X-Amzn-Trace-Id': traceHeader(root) });
    t.diagnostic(`events at the page (ms after fetch): ${r.events.map((e) => `id ${e.id} @${e.t}`).join(', ')}`);
    assert.equal(r.error, null);
    assert.equal(r.events.length, SSE_PER_CONNECTION, 'the whole stream');
    const conn = sseConnections[mark];
    const wrote = conn.written.at(-1).at - conn.written[0].at;
    const spread = Math.round(r.events.at(-1).at - r.events[0].at);
    assert.ok(wrote >= (SSE_PER_CONNECTION - 1) * SSE_INTERVAL_MS * 0.8, `the upstream wrote over ${wrote} ms`);
    assert.ok(r.events[0].at >= conn.written.at(-1).at - 50,
              'the first event reached the page only once the upstream had written the last');
    assert.throws(() => assertIncremental(t, r.events, conn, 'buffered stream'), assert.AssertionError,
                  'the incremental checks of the tests above fail on this stream');
    assert.ok(spread < SSE_INTERVAL_MS / 2,
              `buffered: all events within ${spread} ms at the page (so the incremental checks above can fail)`);
});

test('control: xray_cors off: the same fetch() with X-Amzn-Trace-Id is blocked by the browser (TypeError)', opts, async (t) => {
    const root = newRoot();
    const mark = requests.length;
    const r = await api(`${run.nginx}/nocors/api`, { 'X-Amzn-Trace-Id': traceHeader(root) });
    t.diagnostic(`page -> ${run.nginx}/nocors/api: ${JSON.stringify(r)}`);
    assert.equal(r.ok, false, 'fetch() rejected');
    assert.equal(r.timedOut, false, 'rejected by the browser, not by the test\'s timeout');
    assert.equal(r.name, 'TypeError', 'a network error, as CORS failures are');
    const seen = since(mark);
    assert.deepEqual(seen.map((q) => `${q.method} ${q.path}`), ['OPTIONS /api'],
                     'the upstream got the preflight only: the browser never sent the GET');
});

test('control: xray_cors off without the trace header: the same fetch() succeeds (the block is the header)', opts, async () => {
    const r = await api(`${run.nginx}/nocors/api`);
    assert.equal(r.ok, true, `fetch() succeeded: ${r.name}: ${r.message}`);
    assert.equal(r.status, 200);
});

test('nginx logged nothing at [error] or worse', opts, () => {
    assert.deepEqual(errorLines(), []);
});
