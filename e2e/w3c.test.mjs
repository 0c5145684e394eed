// End-to-end, W3C Trace Context: a page instrumented with OpenTelemetry Web
// (@opentelemetry/sdk-trace-web and @opentelemetry/instrumentation-fetch,
// bundled from e2e/node_modules by esbuild when the test starts, served by
// the test itself) calls nginx + ngx_http_xray on another origin.  What only
// a browser can show:
//   * the fetch instrumentation's cross-origin fetch() sends traceparent,
//     so it is preflighted: with xray_trace_formats naming w3c, xray_cors
//     lets it through;
//   * the upstream receives the browser's trace id in the format(s) the
//     location propagates, with the proxy's upstream call as parent, and the
//     proxy's segment carries the browser's trace and span;
//   * control: where W3C is not read, xray_cors does not list traceparent,
//     and the browser blocks the same call.
//
// Run:  node --test e2e/w3c.test.mjs      (after `make module`)
// Env:  as e2e/lib.mjs; ports are taken from E2E_W3C_PORT_BASE
//       (default 3400) to 3499.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { HERE, STEP_LIMIT_MS, withTimeout, waitFor, segments, badDatagrams,
         startServers, startNginx, state, guard, checkBinaries, openPage, tearDown,
         errorLines } from './lib.mjs';

const PORT_BASE = Number(process.env.E2E_W3C_PORT_BASE || 3400);
const PORT_MAX = 3499;

const RUN_LIMIT_MS = 55_000;

// ---------------------------------------------------------------------------
// the stand-in for a Lambda Function URL: records every request; its own
// CORS policy allows the page's origin and Content-Type, never a trace header

const requests = [];
let pageOrigin = '';

function upstreamHandler(req, res) {
    const url = new URL(req.url, 'http://upstream');
    const raw = [];
    for (let k = 0; k < req.rawHeaders.length; k += 2) raw.push([req.rawHeaders[k], req.rawHeaders[k + 1]]);
    requests.push({ method: req.method, path: url.pathname, headers: req.headers, rawHeaders: raw });

    const cors = {};
    if (req.headers.origin === pageOrigin) {
        cors['Access-Control-Allow-Origin'] = pageOrigin;
        cors.Vary = 'Origin';
    }
    if (req.method === 'OPTIONS') {
        if (cors['Access-Control-Allow-Origin']) {
            cors['Access-Control-Allow-Methods'] = 'GET';
            cors['Access-Control-Allow-Headers'] = 'Content-Type';
        }
        res.writeHead(204, cors);
        res.end();
        return;
    }
    const body = JSON.stringify({ ok: true });
    res.writeHead(200, { ...cors, 'Content-Type': 'application/json',
                         'Content-Length': Buffer.byteLength(body) });
    res.end(body);
}

const lines = (rec, name) => rec.rawHeaders
    .filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);

// ---------------------------------------------------------------------------
// the page: OpenTelemetry Web, as an application would set it up

const PAGE_ENTRY = `
import { WebTracerProvider } from '@opentelemetry/sdk-trace-web';
import { FetchInstrumentation } from '@opentelemetry/instrumentation-fetch';
import { registerInstrumentations } from '@opentelemetry/instrumentation';

// every span the page starts, so that the test knows the ids it sent
const started = [];
const recorder = {
    onStart(span) {
        const sc = span.spanContext();
        started.push({ name: span.name, traceId: sc.traceId, spanId: sc.spanId,
                       flags: sc.traceFlags });
    },
    onEnd() {},
    forceFlush() { return Promise.resolve(); },
    shutdown() { return Promise.resolve(); },
};

const provider = new WebTracerProvider({ spanProcessors: [recorder] });
provider.register();   // the W3C Trace Context propagator, as by default

registerInstrumentations({
    instrumentations: [new FetchInstrumentation({
        // send traceparent to the API on its other origin
        propagateTraceHeaderCorsUrls: [/.*/],
    })],
});

window.e2e = {
    started,
    async api(url, timeoutMs) {
        const ctrl = new AbortController();
        const timer = setTimeout(() => ctrl.abort(), timeoutMs);
        const mark = started.length;
        try {
            const r = await fetch(url, { cache: 'no-store', signal: ctrl.signal });
            const body = await r.text();
            return { ok: true, status: r.status, body, spans: started.slice(mark) };
        } catch (e) {
            return { ok: false, name: e.name, message: e.message,
                     timedOut: ctrl.signal.aborted, spans: started.slice(mark) };
        } finally {
            clearTimeout(timer);
        }
    },
};
`;

let pageScript = '';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>ngx_http_xray e2e: OpenTelemetry Web</title>
<script src="/otel.js"></script>
<p>ngx_http_xray W3C end-to-end test page</p>
`;

function pageHandler(req, res) {
    if (req.url === '/' || req.url === '/index.html') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(PAGE);
    } else if (req.url === '/otel.js') {
        res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(pageScript);
    } else {
        res.writeHead(404);
        res.end();
    }
}

// ---------------------------------------------------------------------------
// nginx: this test's server block (e2e/lib.mjs writes the rest)

const SERVER = `        xray on;
        xray_segment_name e2e-w3c-edge;
        xray_cors on;

        # both formats read, both forwarded
        location /both/ {
            xray_trace_formats w3c xray;
            xray_propagate both;
            proxy_pass http://lambda/;
        }

        # W3C in, X-Ray out: for an X-Ray-instrumented Lambda
        location /xray-out/ {
            xray_trace_formats w3c;
            xray_propagate xray;
            proxy_pass http://lambda/;
        }

        # control: W3C not read, so xray_cors does not allow traceparent
        location /xray-only/ {
            xray_trace_formats xray;
            proxy_pass http://lambda/;
        }
`;

// ---------------------------------------------------------------------------
// set-up and tear-down

const run = {};
const watchdog = guard(RUN_LIMIT_MS);

before(async () => {
    const t0 = Date.now();
    checkBinaries();

    // the page's script: the npm packages, bundled for the browser
    const built = await esbuild.build({
        stdin: { contents: PAGE_ENTRY, resolveDir: HERE, sourcefile: 'page.mjs' },
        bundle: true, write: false, format: 'iife', platform: 'browser',
        target: 'es2020', logLevel: 'silent',
    });
    pageScript = built.outputFiles[0].text;

    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ngx-xray-e2e-w3c-'));
    run.ports = await startServers(PORT_BASE, PORT_MAX, upstreamHandler, pageHandler);
    pageOrigin = `http://127.0.0.1:${run.ports.page}`;
    run.nginx = `http://127.0.0.1:${run.ports.nginx}`;

    await startNginx(run.ports, 'e2e/w3c.test.mjs', SERVER);

    run.page = await openPage(pageOrigin);
    await run.page.waitForFunction(() => window.e2e !== undefined, null, { timeout: 10_000 });
    console.log(`started in ${Date.now() - t0} ms: Chromium ${state.browser.version()}, `
                + `page script ${pageScript.length} bytes, nginx ${run.nginx}, page ${pageOrigin}, `
                + `upstream 127.0.0.1:${run.ports.upstream}, daemon udp 127.0.0.1:${run.ports.daemon}`);
});

after(() => tearDown(watchdog));

const api = (url, timeoutMs = 8_000) => withTimeout(
    run.page.evaluate(([u, ms]) => window.e2e.api(u, ms), [url, timeoutMs]),
    timeoutMs + 2_000, `fetch(${url}) in the page`);

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;
const XRAY_RE = /^Root=(1-[0-9a-f]{8}-[0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])$/;
const rootOf = (t) => `1-${t.slice(0, 8)}-${t.slice(8)}`;

// the fetch() span the page started, whose context went out as traceparent
function browserSpan(r, what) {
    const spans = r.spans.filter((s) => s.name.startsWith('HTTP GET') || s.name === 'GET');
    assert.equal(spans.length, 1, `${what}: one fetch span in the page, got ${JSON.stringify(r.spans)}`);
    assert.equal(spans[0].flags & 1, 1, `${what}: the browser sampled its span`);
    return spans[0];
}

const opts = { timeout: STEP_LIMIT_MS };
const both = {};

test('OpenTelemetry Web fetch() with traceparent, cross-origin, W3C read: the preflight passes', opts, async (t) => {
    both.mark = requests.length;
    const r = await api(`${run.nginx}/both/api`);
    t.diagnostic(`page ${pageOrigin} -> ${run.nginx}/both/api: ${JSON.stringify(r)}`);
    assert.equal(r.ok, true, `the browser let the fetch() through: ${r.name}: ${r.message}`);
    assert.equal(r.status, 200);
    both.span = browserSpan(r, 'GET /both/api');
    const seen = requests.slice(both.mark);
    assert.deepEqual(seen.map((q) => q.method), ['OPTIONS', 'GET'], 'one preflight, then the request');
    assert.match(seen[0].headers['access-control-request-headers'] ?? '', /(^|,)\s*traceparent\s*(,|$)/i,
                 'the browser asked to send traceparent');
});

test("xray_propagate both: the upstream got the browser's trace in both formats, with one parent: the proxy's upstream call", opts, (t) => {
    const get = requests.slice(both.mark).find((q) => q.method === 'GET');
    assert.ok(get, 'the GET reached the upstream');
    const tp = lines(get, 'traceparent');
    const xr = lines(get, 'x-amzn-trace-id');
    t.diagnostic(`browser sent trace ${both.span.traceId} span ${both.span.spanId}; upstream got traceparent ${tp}, X-Amzn-Trace-Id ${xr}`);
    assert.equal(tp.length, 1, 'exactly one traceparent');
    assert.equal(xr.length, 1, 'exactly one X-Amzn-Trace-Id');
    const w = TRACEPARENT_RE.exec(tp[0]);
    const x = XRAY_RE.exec(xr[0]);
    assert.ok(w && x, 'both well formed');
    assert.equal(w[1], both.span.traceId, "traceparent: the browser's trace id");
    assert.equal(x[1], rootOf(both.span.traceId), 'X-Amzn-Trace-Id: the same trace as Root');
    assert.notEqual(w[2], both.span.spanId, "the parent is the proxy's, not the browser's span");
    assert.equal(w[2], x[2], 'the same parent in both formats');
    assert.equal(w[3], '01');
    assert.equal(x[3], '1');
    both.upstreamCall = w[2];
});

test("the proxy's segment: the browser's trace, the browser's span as parent, the forwarded parent as upstream call", opts, async (t) => {
    assert.ok(both.upstreamCall, 'needs the request above');
    const traceId = rootOf(both.span.traceId);
    const doc = await waitFor(() => segments.find((s) => s.trace_id === traceId && !s.in_progress),
                              3_000, `a segment for ${traceId} at the daemon`);
    t.diagnostic(`segment ${doc.name} ${doc.id}: trace_id ${doc.trace_id}, parent_id ${doc.parent_id}, `
                 + `upstream call ${doc.subsegments?.[0]?.id}`);
    assert.equal(doc.parent_id, both.span.spanId, "under the browser's fetch span");
    assert.equal(doc.subsegments?.[0]?.id, both.upstreamCall, 'its upstream call is the parent the upstream received');
    assert.deepEqual(badDatagrams, []);
});

test('W3C in, X-Ray out: the upstream got X-Amzn-Trace-Id only, Root = the browser\'s trace id', opts, async (t) => {
    const mark = requests.length;
    const r = await api(`${run.nginx}/xray-out/api`);
    assert.equal(r.ok, true, `fetch() succeeded: ${r.name}: ${r.message}`);
    const span = browserSpan(r, 'GET /xray-out/api');
    const get = requests.slice(mark).find((q) => q.method === 'GET');
    assert.ok(get, 'the GET reached the upstream');
    const xr = lines(get, 'x-amzn-trace-id');
    t.diagnostic(`browser sent trace ${span.traceId} span ${span.spanId}; upstream got X-Amzn-Trace-Id ${xr}, traceparent ${lines(get, 'traceparent')}`);
    assert.deepEqual(lines(get, 'traceparent'), [], "the browser's traceparent is not forwarded");
    assert.equal(xr.length, 1);
    const x = XRAY_RE.exec(xr[0]);
    assert.ok(x, 'well formed');
    assert.equal(x[1], rootOf(span.traceId));
    assert.notEqual(x[2], span.spanId);
    const doc = await waitFor(() => segments.find((s) => s.trace_id === x[1] && !s.in_progress),
                              3_000, `a segment for ${x[1]}`);
    assert.equal(doc.parent_id, span.spanId);
    assert.equal(doc.subsegments?.[0]?.id, x[2]);
});

test('control: W3C not read (xray_trace_formats xray): the browser blocks the same fetch()', opts, async (t) => {
    const mark = requests.length;
    const r = await api(`${run.nginx}/xray-only/api`);
    t.diagnostic(`page -> ${run.nginx}/xray-only/api: ${JSON.stringify(r)}`);
    assert.equal(r.ok, false, 'fetch() rejected');
    assert.equal(r.timedOut, false, 'rejected by the browser, not by the timeout');
    assert.equal(r.name, 'TypeError');
    assert.deepEqual(requests.slice(mark).map((q) => q.method), ['OPTIONS'],
                     'the upstream got the preflight only');
});

test('nginx logged nothing at [error] or worse', opts, () => {
    assert.deepEqual(errorLines(), []);
});
