// What the end-to-end tests share (e2e/browser.test.mjs, e2e/w3c.test.mjs):
// the environment, bounded waits, ports in a range, the X-Ray daemon
// stand-in, nginx under a keeper shell, Chromium, set-up and tear-down.
// Each test file keeps its upstream, its page, its nginx locations and what
// it asserts.
//
// Env:  E2E_MODULE (default build/ngx_http_xray_module.so), E2E_NGINX
//       (default /usr/sbin/nginx), E2E_CHROMIUM (default /usr/bin/chromium),
//       E2E_KEEP=1 keeps the temporary directory (nginx.conf, logs).
//
// Everything listens on 127.0.0.1.  The upstream, the page server and the
// daemon sink run in the test's process; nginx runs in a process group of
// its own under a small shell that stops it when the test's process ends,
// however it ends (even SIGKILL); Chromium exits when playwright's pipe to
// it closes; every wait is bounded, and a watchdog ends the run.

import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..');
export const MODULE = path.resolve(process.env.E2E_MODULE
                                   || path.join(REPO, 'build/ngx_http_xray_module.so'));
export const NGINX = process.env.E2E_NGINX || '/usr/sbin/nginx';
export const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
export const KEEP = process.env.E2E_KEEP === '1';

export const STEP_LIMIT_MS = 15_000;  // one page.evaluate / one test

const CHROMIUM_ARGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
];

// ---------------------------------------------------------------------------
// small helpers

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// for races: a timer that does not keep the process alive once the race is won
export const deadline = (ms) => new Promise((r) => setTimeout(r, ms).unref());

export function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

export async function waitFor(cond, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
        const v = cond();
        if (v) return v;
        if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
        await sleep(25);
    }
}

// listen on the first free port from base up to max
async function listenInRange(make, what, base, max) {
    for (let port = base; port <= max; port++) {
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
    throw new Error(`${what}: no free port in ${base}-${max}`);
}
const claimed = new Set();

// a free port for nginx: bind it, note it, let it go; nginx takes it next
async function freePortForNginx(base, max) {
    const { server, port } = await listenInRange(() => net.createServer(), 'nginx', base, max);
    await new Promise((r) => server.close(r));
    return port;
}

// ---------------------------------------------------------------------------
// the X-Ray daemon stand-in: drains and decodes what nginx sends

export const segments = [];  // decoded documents
export const badDatagrams = [];

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

// the servers in this process, each on a free port of base..max: the
// upstream, the page server, the daemon sink; and a free port for nginx
export async function startServers(base, max, upstreamHandler, pageHandler) {
    const nginxPort = await freePortForNginx(base, max);
    const up = await listenInRange(() => http.createServer(upstreamHandler), 'upstream', base, max);
    const pg = await listenInRange(() => http.createServer(pageHandler), 'page server', base, max);
    const dm = await listenInRange(() => dgram.createSocket('udp4'), 'daemon sink', base, max);
    state.upstream = up.server;
    state.page = pg.server;
    state.daemon = dm.server;
    dm.server.on('message', onDatagram);
    return { upstream: up.port, page: pg.port, daemon: dm.port, nginx: nginxPort };
}

// ---------------------------------------------------------------------------
// nginx

// the configuration: what every test needs, around the test's own server
// block body (its xray directives and locations)
function nginxConf(dir, ports, file, server) {
    const user = process.getuid && process.getuid() === 0 ? 'user root;' : '';
    return `# generated by ${file}
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

${server}    }
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

export const state = {};  // everything that must be torn down

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

// nginx in state.dir, with nginxConf(.., file, server); returns once it listens
export async function startNginx(ports, file, server) {
    const dir = state.dir;
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, 'tmp', d), { recursive: true });
    fs.writeFileSync(path.join(dir, 'sampling-rules.json'),
        JSON.stringify({ version: 2, rules: [], default: { fixed_target: 0, rate: 1 } }) + '\n');
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, nginxConf(dir, ports, file, server));

    const args = ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf];
    // NGINX in the environment is nginx's own (listening sockets handed
    // over by a binary upgrade): never pass one on
    const env = { ...process.env };
    delete env.NGINX;
    const check = spawnSync(NGINX, [...args, '-t', '-q'], { encoding: 'utf8', timeout: 10_000, env });
    if (check.status !== 0) {
        throw new Error(`nginx -t failed (${check.error?.message ?? 'exit ' + check.status}):\n`
                        + `${check.stderr}${errorLogTail()}`);
    }

    // nginx under a small shell in a process group of their own: the shell
    // stops nginx when its standard input (a pipe from this process) closes,
    // which happens when the test is done *or* dies however it dies; it
    // gives nginx 3 s, then removes the temporary directory (unless
    // E2E_KEEP=1) and kills the whole group, itself included
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
    child.stdin.end();         // the keeper: SIGTERM to nginx, SIGKILL after 3 s
    await Promise.race([exited, deadline(5_000)]);
    killNginxSync('SIGKILL');  // the group, should anything be left of it
}

// ---------------------------------------------------------------------------
// set-up and tear-down

// last resort: whatever happens, nothing of ours outlives this process; and
// a watchdog that stops everything after runLimitMs; returns the watchdog
export function guard(runLimitMs) {
    process.on('exit', () => { killNginxSync('SIGKILL'); removeTmpSync(); });
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
        process.on(sig, () => { killNginxSync('SIGKILL'); removeTmpSync(); process.exit(130); });
    }
    const watchdog = setTimeout(() => {
        console.error(`# e2e watchdog: the run took over ${runLimitMs / 1000} s; stopping everything`);
        killNginxSync('SIGKILL');
        state.browser?.close().catch(() => {});
        setTimeout(() => process.exit(1), 1_000).unref();
    }, runLimitMs);
    watchdog.unref();
    return watchdog;
}

export function checkBinaries() {
    for (const [what, p] of [['nginx module', MODULE], ['nginx', NGINX], ['chromium', CHROMIUM]]) {
        if (!fs.existsSync(p)) throw new Error(`${what} not found at ${p} (run: make e2e)`);
    }
}

// Chromium, one page on pageOrigin; returns the page
export async function openPage(pageOrigin) {
    state.browser = await chromium.launch({
        executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
        timeout: 20_000,  // playwright's own user-data-dir: a fresh temporary one
    });
    const context = await state.browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_LIMIT_MS);
    await page.goto(`${pageOrigin}/`, { timeout: 10_000 });
    return page;
}

export async function tearDown(watchdog) {
    if (state.browser) await withTimeout(state.browser.close(), 10_000, 'closing Chromium').catch((e) => console.error(`# ${e.message}`));
    await stopNginx();
    for (const s of [state.upstream, state.page]) {
        if (s) { s.closeAllConnections?.(); await new Promise((r) => s.close(r)); }
    }
    state.daemon?.close();
    removeTmpSync();
    clearTimeout(watchdog);
}

// nginx's error.log: the lines at [error] or worse
export function errorLines() {
    const log = fs.readFileSync(path.join(state.dir, 'error.log'), 'utf8');
    return log.split('\n').filter((l) => /\[(error|crit|alert|emerg)\]/.test(l));
}
