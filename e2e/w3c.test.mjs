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
// Env:  as e2e/browser.test.mjs; ports are taken from E2E_W3C_PORT_BASE
//       (default 3400) to 3499.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const MODULE = path.resolve(process.env.E2E_MODULE
                            || path.join(REPO, 'build/ngx_http_xray_module.so'));
const NGINX = process.env.E2E_NGINX || '/usr/sbin/nginx';
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const PORT_BASE = Number(process.env.E2E_W3C_PORT_BASE || 3400);
const PORT_MAX = 3499;
const KEEP = process.env.E2E_KEEP === '1';

const RUN_LIMIT_MS = 55_000;
const STEP_LIMIT_MS = 15_000;

const CHROMIUM_ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deadline = (ms) => new Promise((r) => setTimeout(r, ms).unref());

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

async function waitFor(cond, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        const v = cond();
        if (v) return v;
        if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
        await sleep(25);
    }
}

const claimed = new Set();

async function listenInRange(make, what) {
    for (let port = PORT_BASE; port <= PORT_MAX; port++) {
        if (claimed.has(port)) continue;
        const server = make();
        const ok = await new Promise((resolve, reject) => {
            const onError = (e) => {
                if (e.code === 'EADDRINUSE' || e.code === 'EACCES') resolve(false);
                else reject(e);
            };
            server.once('error', onError);
            const done = () => { server.off('error', onError); resolve(true); };
            if (server instanceof dgram.Socket) server.bind(port, '127.0.0.1', done);
            else server.listen(port, '127.0.0.1', done);
        });
        if (ok) { claimed.add(port); return { server, port }; }
        try { server.close(); } catch { /* never bound */ }
    }
    throw new Error(`${what}: no free port in ${PORT_BASE}-${PORT_MAX}`);
}

async function freePortForNginx() {
    const { server, port } = await listenInRange(() => net.createServer(), 'nginx');
    await new Promise((r) => server.close(r));
    return port;
}

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
// the X-Ray daemon stand-in

const segments = [];
const badDatagrams = [];

function onDatagram(msg) {
    const text = msg.toString('utf8');
    const nl = text.indexOf('\n');
    try {
        const head = JSON.parse(text.slice(0, nl));
        if (head.format !== 'json' || head.version !== 1) throw new Error('bad header');
        segments.push(JSON.parse(text.slice(nl + 1)));
    } catch {
        badDatagrams.push(text.slice(0, 200));
    }
}

// ---------------------------------------------------------------------------
// nginx

function nginxConf(dir, ports) {
    const user = process.getuid && process.getuid() === 0 ? 'user root;' : '';
    return `# generated by e2e/w3c.test.mjs
load_module ${MODULE};
${user}
daemon off;
master_process on;
worker_processes 1;
error_log ${dir}/error.log info;
pid ${dir}/nginx.pid;

events {
    worker_connections 256;
}

http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;

    xray_sampling_rules ${dir}/sampling-rules.json;
    xray_daemon 127.0.0.1:${ports.daemon} flush=20ms;

    upstream lambda {
        server 127.0.0.1:${ports.upstream};
    }

    server {
        listen 127.0.0.1:${ports.nginx};

        xray on;
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
    }
}
`;
}

const NGINX_KEEPER = `
exec 3<&0
"$@" </dev/null 3<&- &
nginx=$!
( cat <&3 >/dev/null; kill -TERM $nginx 2>/dev/null; sleep 3; kill -KILL 0 ) &
wait $nginx
[ -z "$E2E_RM_DIR" ] || rm -rf "$E2E_RM_DIR"
kill -KILL 0
`;

const state = {};

function killNginxSync(signal = 'SIGKILL') {
    const pid = state.nginx?.pid;
    if (!pid || state.nginxExited) return;
    try { process.kill(-pid, signal); } catch { /* gone */ }
}

function removeTmpSync() {
    if (state.dir && !KEEP) {
        try { fs.rmSync(state.dir, { recursive: true, force: true }); } catch { /* best effort */ }
    }
}

function errorLogTail(n = 30) {
    try {
        return fs.readFileSync(path.join(state.dir, 'error.log'), 'utf8')
            .trimEnd().split('\n').slice(-n).join('\n');
    } catch { return '(no error.log)'; }
}

async function startNginx(ports) {
    const dir = state.dir;
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, 'tmp', d), { recursive: true });
    fs.writeFileSync(path.join(dir, 'sampling-rules.json'),
        JSON.stringify({ version: 2, rules: [], default: { fixed_target: 0, rate: 1 } }) + '\n');
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, nginxConf(dir, ports));

    const args = ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf];
    const env = { ...process.env };
    delete env.NGINX;
    const check = spawnSync(NGINX, [...args, '-t', '-q'], { encoding: 'utf8', timeout: 10_000, env });
    if (check.status !== 0) {
        throw new Error(`nginx -t failed (${check.error?.message ?? 'exit ' + check.status}):\n`
                        + `${check.stderr}${errorLogTail()}`);
    }

    const child = spawn('/bin/sh', ['-c', NGINX_KEEPER, 'nginx-keeper', NGINX, ...args],
                        { detached: true, stdio: ['pipe', 'ignore', 'pipe'],
                          env: { ...env, E2E_RM_DIR: KEEP ? '' : dir } });
    state.nginx = child;
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', () => { state.nginxExited = true; });
    child.stdin.on('error', () => {});

    const end = Date.now() + 5_000;
    for (;;) {
        if (state.nginxExited) throw new Error(`nginx stopped at start:\n${stderr}${errorLogTail()}`);
        const up = await new Promise((resolve) => {
            const s = net.connect(ports.nginx, '127.0.0.1');
            s.setTimeout(500);
            s.once('connect', () => { s.destroy(); resolve(true); });
            s.once('error', () => resolve(false));
            s.once('timeout', () => { s.destroy(); resolve(false); });
        });
        if (up) return;
        if (Date.now() > end) throw new Error(`nginx does not listen on ${ports.nginx} after 5 s:\n${errorLogTail()}`);
        await sleep(50);
    }
}

async function stopNginx() {
    const child = state.nginx;
    if (!child || state.nginxExited) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin.end();
    await Promise.race([exited, deadline(5_000)]);
    killNginxSync('SIGKILL');
}

// ---------------------------------------------------------------------------
// set-up and tear-down

const run = {};

process.on('exit', () => { killNginxSync('SIGKILL'); removeTmpSync(); });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => { killNginxSync('SIGKILL'); removeTmpSync(); process.exit(130); });
}
const watchdog = setTimeout(() => {
    console.error(`# e2e watchdog: the run took over ${RUN_LIMIT_MS / 1000} s; stopping everything`);
    killNginxSync('SIGKILL');
    state.browser?.close().catch(() => {});
    setTimeout(() => process.exit(1), 1_000).unref();
}, RUN_LIMIT_MS);
watchdog.unref();

before(async () => {
    const t0 = Date.now();
    for (const [what, p] of [['nginx module', MODULE], ['nginx', NGINX], ['chromium', CHROMIUM]]) {
        if (!fs.existsSync(p)) throw new Error(`${what} not found at ${p} (run: make e2e)`);
    }

    // the page's script: the npm packages, bundled for the browser
    const built = await esbuild.build({
        stdin: { contents: PAGE_ENTRY, resolveDir: HERE, sourcefile: 'page.mjs' },
        bundle: true, write: false, format: 'iife', platform: 'browser',
        target: 'es2020', logLevel: 'silent',
    });
    pageScript = built.outputFiles[0].text;

    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ngx-xray-e2e-w3c-'));
    const nginxPort = await freePortForNginx();
    const up = await listenInRange(() => http.createServer(upstreamHandler), 'upstream');
    const pg = await listenInRange(() => http.createServer(pageHandler), 'page server');
    const dm = await listenInRange(() => dgram.createSocket('udp4'), 'daemon sink');
    state.upstream = up.server;
    state.page = pg.server;
    state.daemon = dm.server;
    dm.server.on('message', onDatagram);
    run.ports = { upstream: up.port, page: pg.port, daemon: dm.port, nginx: nginxPort };
    pageOrigin = `http://127.0.0.1:${run.ports.page}`;
    run.nginx = `http://127.0.0.1:${run.ports.nginx}`;

    await startNginx(run.ports);

    state.browser = await chromium.launch({
        executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 20_000,
    });
    const context = await state.browser.newContext();
    run.page = await context.newPage();
    run.page.setDefaultTimeout(STEP_LIMIT_MS);
    await run.page.goto(`${pageOrigin}/`, { timeout: 10_000 });
    await run.page.waitForFunction(() => window.e2e !== undefined, null, { timeout: 10_000 });
    console.log(`started in ${Date.now() - t0} ms: Chromium ${state.browser.version()}, `
                + `page script ${pageScript.length} bytes, nginx ${run.nginx}, page ${pageOrigin}, `
                + `upstream 127.0.0.1:${run.ports.upstream}, daemon udp 127.0.0.1:${run.ports.daemon}`);
});

after(async () => {
    if (state.browser) await withTimeout(state.browser.close(), 10_000, 'closing Chromium').catch((e) => console.error(`# ${e.message}`));
    await stopNginx();
    for (const s of [state.upstream, state.page]) {
        if (s) { s.closeAllConnections?.(); await new Promise((r) => s.close(r)); }
    }
    state.daemon?.close();
    removeTmpSync();
    clearTimeout(watchdog);
});

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
    const log = fs.readFileSync(path.join(state.dir, 'error.log'), 'utf8');
    const bad = log.split('\n').filter((l) => /\[(error|crit|alert|emerg)\]/.test(l));
    assert.deepEqual(bad, []);
});
