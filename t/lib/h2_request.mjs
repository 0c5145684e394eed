// One HTTP/2 request (prior knowledge, cleartext) with node's own client:
//
//     node h2_request.mjs URL METHOD BODY [name:value ...]
//
// prints the response's status, or 000 when none came within 10 s.
//
// Why not curl: when nginx answers before reading a body (413 from a
// Content-Length over client_max_body_size) it ends the stream with
// RST_STREAM NO_ERROR right after the response, as RFC 9113 8.1 allows, and
// Debian 12's curl then often drops the response it has read and reports
// 000 (25 runs in 40 here).  Node reports the response it received.

import http2 from 'node:http2';

const [url, method, body, ...headers] = process.argv.slice(2);
const u = new URL(url);
const h = { ':method': method, ':path': u.pathname + u.search };

for (const kv of headers) {
    const i = kv.indexOf(':');
    h[kv.slice(0, i).trim().toLowerCase()] = kv.slice(i + 1).trim();
}

const done = (status) => {
    process.stdout.write(status + '\n');
    process.exit(0);
};

const session = http2.connect(u.origin);
session.on('error', () => done('000'));

const req = session.request(h);
req.on('response', (rh) => done(String(rh[':status'])));
req.on('error', () => {});
req.end(body);

setTimeout(() => done('000'), 10000);
