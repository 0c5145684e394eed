// The oracle for centralized sampling: AWS's remote sampler for OpenTelemetry
// JS (@opentelemetry/sampler-aws-xray, written by the X-Ray team), pointed at
// the stand-in sampling API and driven with a plan of requests.
//
//     node driver.mjs http://127.0.0.1:PORT plan.json > result.json
//
// plan.json: {
//   "service": "edge",                      the resource's service.name
//   "picks": [{"host", "method", "path", "headers": {name: value}}],
//   "borrow": {"request": {...}, "seconds": S, "every_ms": MS},
//   "quota":  {"request": {...}, "seconds": S, "every_ms": MS}
// }
// The driver waits for the sampler's first rules, asks which rule each of
// "picks" matches, then sends "borrow" traffic (before any quota), waits for
// the sampler's first targets poll (10 s after it started, as it is built to
// do), then sends "quota" traffic.  It prints
// {"picks": [RuleName], "picks_sampled": {RuleName: sampled},
//  "borrow": {requests, sampled, min, max, longest_gap_ms}, "quota": {...},
//  "counts": {RuleName: requests}} and exits (min and max: see traffic()).
//
// Request headers become span attributes of the same (lowercase) names, so
// that rules with Attributes match them the way the module matches headers.
// The sampler's rule cache is read through its internal (exported)
// _AWSXRayRemoteSampler: there is no public way to ask which rule matched.

import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
    diag, DiagConsoleLogger, DiagLogLevel, ROOT_CONTEXT, SpanKind,
} from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { _AWSXRayRemoteSampler } from '@opentelemetry/sampler-aws-xray';

const RECORD_AND_SAMPLED = 2;

if (process.env.ORACLE_DEBUG) {
    diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.ALL);
}

const [endpoint, planFile] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planFile, 'utf8'));

const sampler = new _AWSXRayRemoteSampler({
    resource: resourceFromAttributes({ 'service.name': plan.service }),
    endpoint,
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function attributes(req) {
    const a = {
        'url.path': req.path,
        'http.request.method': req.method,
        'server.address': req.host,
    };
    for (const [k, v] of Object.entries(req.headers || {})) {
        a[k.toLowerCase()] = v;
    }
    return a;
}

function decide(req) {
    const r = sampler.shouldSample(ROOT_CONTEXT, randomBytes(16).toString('hex'),
                                   'request', SpanKind.SERVER, attributes(req), []);
    return r.decision === RECORD_AND_SAMPLED;
}

async function until(what, cond, seconds) {
    const deadline = Date.now() + seconds * 1000;
    while (!cond()) {
        if (Date.now() > deadline) {
            throw new Error(`oracle: no ${what} within ${seconds} s`);
        }
        await sleep(20);
    }
}

// The sampler's reservoir is a token bucket (its internal RateLimiter): a
// balance of milliseconds that grows with the clock up to one second's
// worth, a sample costing 1000 / quota of them.  How the driver drove it
// bounds what it may sample, whatever pace the driver kept on a loaded
// machine; with d1 and dn the first and last decisions, G the longest gap
// between two decisions, floor the wallet's floor when the phase starts:
//   max: (min(cap, d1 - floor) + dn - d1) / cost, the balance at d1 and
//        all that accrues after it;
//   min: (dn - d1) / (cost + G): from any moment the balance needs at most
//        cost ms to hold a sample (cost <= cap), and a decision comes
//        within G after that.
// Each decision's clock reading lies between the driver's readings before
// and after it, which widens both bounds by those readings alone.
async function traffic(phase, counts) {
    const out = { requests: 0, sampled: 0 };
    const limiter = sampler.ruleCache.getMatchedRule(attributes(phase.request))
        .reservoirSampler.reservoir;
    const floor = limiter.walletFloorMillis;
    const cost = 1000 / limiter.quota;
    let first = null;
    let before = 0;
    let after = 0;
    let prevBefore = 0;
    let gap = 0;
    const start = Date.now();
    let next = start;
    while (Date.now() - start < phase.seconds * 1000) {
        const rule = sampler.ruleCache.getMatchedRule(attributes(phase.request));
        counts[rule.samplingRule.RuleName] =
            (counts[rule.samplingRule.RuleName] || 0) + 1;
        out.requests++;
        before = Date.now();
        out.sampled += decide(phase.request) ? 1 : 0;
        after = Date.now();
        if (first === null) {
            first = { before, after };
        } else {
            gap = Math.max(gap, after - prevBefore);
        }
        prevBefore = before;
        next += phase.every_ms;
        await sleep(Math.max(0, next - Date.now()));
    }
    if (first !== null) {
        const balance = Math.min(limiter.MAX_BALANCE_MILLIS,
                                 first.after - floor);
        out.max = Math.floor((balance + after - first.before) / cost);
        out.min = Math.floor(Math.max(0, before - first.after) / (cost + gap));
        out.longest_gap_ms = gap;
    }
    return out;
}

const started = Date.now();
const result = { picks: [], picks_sampled: {}, counts: {} };

await until('rules', () => sampler.ruleCache.ruleAppliers.length > 0, 20);

for (const req of plan.picks) {
    const rule = sampler.ruleCache.getMatchedRule(attributes(req));
    result.picks.push(rule ? rule.samplingRule.RuleName : null);
    if (decide(req) && rule) {
        result.picks_sampled[rule.samplingRule.RuleName] =
            (result.picks_sampled[rule.samplingRule.RuleName] || 0) + 1;
    }
    if (rule) {
        result.counts[rule.samplingRule.RuleName] =
            (result.counts[rule.samplingRule.RuleName] || 0) + 1;
    }
}

if (plan.borrow) {
    result.borrow = await traffic(plan.borrow, result.counts);
}

if (plan.quota) {
    const name = () => sampler.ruleCache.getMatchedRule(
        attributes(plan.quota.request));
    // the first targets poll comes 10 s (+ up to 0.1 s) after the start
    await until('targets', () => name().borrowingEnabled === false, 25);
    result.counts_before_quota = { ...result.counts };
    result.targets_after_ms = Date.now() - started;
    result.quota = await traffic(plan.quota, result.counts);
}

sampler.stopPollers();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
