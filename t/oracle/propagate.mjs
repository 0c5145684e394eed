// OpenTelemetry's own propagators as the oracle for the module's trace
// context: the W3C one of @opentelemetry/core and the AWS X-Ray one of
// @opentelemetry/propagator-aws-xray, exactly as an OpenTelemetry SDK
// (a browser, a Lambda with ADOT) runs them.
//
//   node t/oracle/propagate.mjs [cases.json]     (default: corpus.json)
//
// Reads a JSON array of cases and prints one JSON line per case.  A case is
// either
//
//   {"name": ..., "headers": {"traceparent": ..., "tracestate": ... or
//    [line, ...], "x-amzn-trace-id": ...}}
//
// for which it prints what each propagator extracts from those request
// headers ({valid, trace_id, span_id, sampled, tracestate}) and what each
// propagator injects from the context it extracted; or
//
//   {"name": ..., "inject": {"trace_id", "span_id", "sampled",
//    "tracestate"?}}
//
// for which it prints the headers both propagators inject for that context.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

import {
    ROOT_CONTEXT, trace, defaultTextMapGetter, defaultTextMapSetter,
    TraceFlags,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator, TraceState } from '@opentelemetry/core';
import { AWSXRayPropagator } from '@opentelemetry/propagator-aws-xray';

const w3c = new W3CTraceContextPropagator();
const xray = new AWSXRayPropagator();

const here = dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] ?? join(here, 'corpus.json');
const cases = JSON.parse(readFileSync(file, 'utf8'));

// the carrier as an HTTP server hands it over: lower-case names, a
// repeated header as an array
function carrier(headers) {
    const c = {};
    for (const [k, v] of Object.entries(headers ?? {})) {
        c[k.toLowerCase()] = v;
    }
    return c;
}

function extracted(propagator, headers) {
    const ctx = propagator.extract(ROOT_CONTEXT, carrier(headers),
                                   defaultTextMapGetter);
    const sc = trace.getSpanContext(ctx);
    if (!sc) {
        return { valid: false };
    }
    return {
        valid: true,
        trace_id: sc.traceId,
        span_id: sc.spanId,
        sampled: (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED,
        tracestate: sc.traceState ? sc.traceState.serialize() : null,
        sc,
    };
}

function injected(sc) {
    const ctx = trace.setSpanContext(ROOT_CONTEXT, sc);
    const out = {};
    w3c.inject(ctx, out, defaultTextMapSetter);
    xray.inject(ctx, out, defaultTextMapSetter);
    return out;
}

function plain(e) {
    const { sc, ...rest } = e;
    if (sc) {
        rest.inject = injected(sc);
    }
    return rest;
}

for (const c of cases) {
    if (c.inject) {
        const sc = {
            traceId: c.inject.trace_id,
            spanId: c.inject.span_id,
            traceFlags: c.inject.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
            isRemote: false,
        };
        if (c.inject.tracestate) {
            sc.traceState = new TraceState(c.inject.tracestate);
        }
        console.log(JSON.stringify({ name: c.name, inject: injected(sc) }));
        continue;
    }

    console.log(JSON.stringify({
        name: c.name,
        w3c: plain(extracted(w3c, c.headers)),
        xray: plain(extracted(xray, c.headers)),
    }));
}
