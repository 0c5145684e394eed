#!/usr/bin/env python3
"""A stand-in for the X-Ray sampling API behind the daemon's TCP proxy.

    xray_sampling_api.py --port PORT --config FILE --record FILE [--model M]
                         [--log] [--rules-modified-at-mtime]

Listens on 127.0.0.1:PORT for the two calls the daemon proxies,
POST /GetSamplingRules and POST /SamplingTargets, checks every request body
against the input shapes of AWS's own X-Ray API model (botocore's
service-2.json, read at start: required members, types, lengths, ranges,
list sizes, no unknown members), and answers from FILE, a JSON object read
again whenever it changes:

    rules        SamplingRuleRecords to serve (a bare SamplingRule is
                 wrapped in a record)
    page_size    rules a page (default 100); pages are chained by NextToken
    targets      {RuleName: SamplingTargetDocument} for rules the request
                 reports; "ReservoirQuotaTTLIn" and, inside "SamplingBoost",
                 "BoostRateTTLIn" give a TTL in seconds from now
    last_rule_modification   LastRuleModification (epoch seconds), or
                 "last_rule_modification_in" (seconds from now)
    fault        null, "http500", "garbage", "slow:SECONDS", "huge" (10 MB),
                 "endless" (a body that never ends), "close" (no answer)
    fault_paths  the paths the fault applies to (default both)

Every request is appended to the record FILE as one JSON line:
{"time", "path", "body" (the decoded JSON, or null), "raw" (when it did not
decode), "errors" (what the model check found; empty when valid)}.  An
invalid request is answered 400 with an AWS-style error, as the service
would.  Only the Python standard library is used.  Without the model file
(python3-botocore not installed) nothing is checked and a line says so.

--log prints one line a call on stdout (the rules served, the statistics
reported); --rules-modified-at-mtime makes LastRuleModification, when FILE
sets none, the time FILE last changed, as the service reports a change of
its rules: a client then fetches the rules again after its next targets
call.  `make run` (scripts/demo.sh) runs it with both.

The boost fields (SamplingBoostStatisticsDocuments) are newer than the model
Debian ships; their shapes are written below from the X-Ray API reference
(SamplingBoostStatisticsDocument: RuleName, ServiceName, Timestamp,
AnomalyCount, TotalCount, SampledAnomalyCount, all required; at most 25).
"""

import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_MODEL = ('/usr/lib/python3/dist-packages/botocore/data/xray/'
                 '2016-04-12/service-2.json')

# From the X-Ray API reference (GetSamplingTargets, 2025): not in the model
# Debian's python3-botocore ships.
BOOST_SHAPES = {
    'SamplingBoostStatisticsDocumentList': {
        'type': 'list', 'max': 25,
        'member': {'shape': 'SamplingBoostStatisticsDocument'},
    },
    'SamplingBoostStatisticsDocument': {
        'type': 'structure',
        'required': ['RuleName', 'ServiceName', 'Timestamp', 'AnomalyCount',
                     'TotalCount', 'SampledAnomalyCount'],
        'members': {
            'RuleName': {'shape': 'RuleName'},
            'ServiceName': {'shape': 'ServiceName'},
            'Timestamp': {'shape': 'Timestamp'},
            'AnomalyCount': {'shape': 'AnomalyCount'},
            'TotalCount': {'shape': 'TotalCount'},
            'SampledAnomalyCount': {'shape': 'SampledAnomalyCount'},
        },
    },
    'AnomalyCount': {'type': 'integer', 'min': 0},
    'TotalCount': {'type': 'integer', 'min': 0},
    'SampledAnomalyCount': {'type': 'integer', 'min': 0},
}

INT32 = (-2 ** 31, 2 ** 31 - 1)


class NoModel:
    """Stands for the model when it is not installed: checks nothing."""
    inputs = {'/GetSamplingRules': None, '/SamplingTargets': None}

    def check(self, shape_name, value, where, errors):
        if not isinstance(value, dict):
            errors.append('(body): must be an object')


class Model:
    def __init__(self, path):
        with open(path) as f:
            model = json.load(f)
        self.shapes = model['shapes']
        for name, shape in BOOST_SHAPES.items():
            self.shapes.setdefault(name, shape)
        members = self.shapes['GetSamplingTargetsRequest']['members']
        members.setdefault('SamplingBoostStatisticsDocuments',
                           {'shape': 'SamplingBoostStatisticsDocumentList'})
        self.inputs = {}
        for op in model['operations'].values():
            self.inputs[op['http']['requestUri']] = op['input']['shape']

    def check(self, shape_name, value, where, errors):
        shape = self.shapes[shape_name]
        kind = shape['type']
        lo, hi = shape.get('min'), shape.get('max')

        def err(msg):
            errors.append('%s: %s' % (where or '(body)', msg))

        if kind == 'structure':
            if not isinstance(value, dict):
                return err('must be an object')
            for req in shape.get('required', []):
                if value.get(req) is None:
                    err('missing required member %s' % req)
            for key, v in value.items():
                if key not in shape['members']:
                    err('unknown member %s' % key)
                elif v is not None:
                    self.check(shape['members'][key]['shape'], v,
                               '%s.%s' % (where, key) if where else key,
                               errors)
        elif kind == 'list':
            if not isinstance(value, list):
                return err('must be a list')
            if lo is not None and len(value) < lo:
                err('fewer than %d entries' % lo)
            if hi is not None and len(value) > hi:
                err('more than %d entries' % hi)
            for i, v in enumerate(value):
                self.check(shape['member']['shape'], v,
                           '%s[%d]' % (where, i), errors)
        elif kind == 'map':
            if not isinstance(value, dict):
                return err('must be an object')
            if hi is not None and len(value) > hi:
                err('more than %d entries' % hi)
            for k, v in value.items():
                self.check(shape['key']['shape'], k, where + ' key', errors)
                self.check(shape['value']['shape'], v,
                           '%s[%s]' % (where, k), errors)
        elif kind == 'string':
            if not isinstance(value, str):
                return err('must be a string')
            if lo is not None and len(value) < lo:
                err('shorter than %d characters' % lo)
            if hi is not None and len(value) > hi:
                err('longer than %d characters' % hi)
            if 'enum' in shape and value not in shape['enum']:
                err('not one of %s' % shape['enum'])
        elif kind in ('integer', 'long'):
            if isinstance(value, bool) or not isinstance(value, int):
                return err('must be an integer')
            if kind == 'integer' and not INT32[0] <= value <= INT32[1]:
                err('out of the 32-bit range')
            if lo is not None and value < lo:
                err('below %s' % lo)
            if hi is not None and value > hi:
                err('above %s' % hi)
        elif kind in ('double', 'float'):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return err('must be a number')
            if lo is not None and value < lo:
                err('below %s' % lo)
            if hi is not None and value > hi:
                err('above %s' % hi)
        elif kind == 'timestamp':
            # rest-json: epoch seconds, a number
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return err('must be epoch seconds (a number)')
            if value < 0:
                err('before the epoch')
        elif kind == 'boolean':
            if not isinstance(value, bool):
                err('must be a boolean')
        else:
            err('shape type %s not checked' % kind)


class State:
    def __init__(self, config, record, modified_at_mtime=False):
        self.config_path = config
        self.record_path = record
        self.modified_at_mtime = modified_at_mtime
        self.modified = None
        self.mtime = None
        self.config = {}
        self.lock = threading.Lock()

    def current(self):
        with self.lock:
            try:
                st = os.stat(self.config_path)
                stamp = (st.st_mtime_ns, st.st_size)
                if stamp != self.mtime:
                    with open(self.config_path) as f:
                        self.config = json.load(f)
                    self.mtime = stamp
                    self.modified = st.st_mtime
            except (OSError, ValueError):
                pass
            if (self.modified_at_mtime and self.modified is not None
                    and 'last_rule_modification' not in self.config
                    and 'last_rule_modification_in' not in self.config):
                return dict(self.config,
                            last_rule_modification=self.modified)
            return self.config

    def record(self, entry):
        line = json.dumps(entry, sort_keys=True) + '\n'
        with self.lock:
            with open(self.record_path, 'a') as f:
                f.write(line)


def rule_records(config):
    records = []
    for r in config.get('rules', []):
        records.append(r if 'SamplingRule' in r else {
            'SamplingRule': r, 'CreatedAt': 0, 'ModifiedAt': 0})
    return records


def targets_reply(config, body):
    now = time.time()
    wanted = config.get('targets', {})
    docs = []
    for st in body.get('SamplingStatisticsDocuments', []):
        t = wanted.get(st.get('RuleName'))
        if t is None:
            continue
        doc = {'RuleName': st['RuleName']}
        for k, v in t.items():
            if k == 'ReservoirQuotaTTLIn':
                doc['ReservoirQuotaTTL'] = now + v
            elif k == 'SamplingBoost':
                b = dict(v)
                if 'BoostRateTTLIn' in b:
                    b['BoostRateTTL'] = now + b.pop('BoostRateTTLIn')
                doc['SamplingBoost'] = b
            else:
                doc[k] = v
        docs.append(doc)
    reply = {'SamplingTargetDocuments': docs, 'UnprocessedStatistics': []}
    if 'last_rule_modification_in' in config:
        reply['LastRuleModification'] = now + config['last_rule_modification_in']
    elif config.get('last_rule_modification') is not None:
        reply['LastRuleModification'] = config['last_rule_modification']
    return reply


def summary(path, body, reply):
    """One line for --log: what was asked and what was answered."""
    if path == '/GetSamplingRules':
        rules = [r['SamplingRule'].get('RuleName', '?')
                 for r in reply.get('SamplingRuleRecords', [])]
        more = ' (more pages)' if reply.get('NextToken') else ''
        return 'GetSamplingRules: %d rule(s) %s%s' % (
            len(rules), ', '.join(rules), more)
    docs = [d for d in body.get('SamplingStatisticsDocuments', [])
            if d.get('RequestCount')]
    if not docs:
        return None
    granted = {t['RuleName']: t for t in reply['SamplingTargetDocuments']}
    parts = []
    for d in docs:
        part = '%s %d requests, %d sampled, %d borrowed' % (
            d['RuleName'], d['RequestCount'], d['SampledCount'],
            d.get('BorrowCount', 0))
        t = granted.get(d['RuleName'], {})
        if 'ReservoirQuota' in t:
            part += ' -> quota %s/s' % t['ReservoirQuota']
        parts.append(part)
    return 'SamplingTargets: ' + '; '.join(parts)


def make_handler(model, state, log=False):

    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        server_version = 'xray-sampling-stand-in'

        def log_message(self, fmt, *args):
            pass

        def answer(self, status, obj=None, raw=None):
            data = raw if raw is not None else json.dumps(obj).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.answer(405, {'message': 'POST only'})

        def do_POST(self):
            config = state.current()
            length = self.headers.get('Content-Length')
            errors = []
            raw = b''
            if length is None:
                if self.headers.get('Transfer-Encoding'):
                    errors.append('chunked bodies are not read')
                    self.close_connection = True
            else:
                raw = self.rfile.read(int(length))

            body = None
            if self.path not in model.inputs:
                errors.append('unknown path %s' % self.path)
            elif not errors:
                text = raw.decode('utf-8', 'replace').strip()
                try:
                    # GetSamplingRules has no required member: an empty
                    # body is the empty structure
                    body = json.loads(text) if text else {}
                except ValueError as e:
                    errors.append('not JSON: %s' % e)
                if body is not None:
                    model.check(model.inputs[self.path], body, '', errors)

            entry = {'time': time.time(), 'path': self.path, 'body': body,
                     'errors': errors,
                     'content_type': self.headers.get('Content-Type')}
            if body is None:
                entry['raw'] = raw.decode('utf-8', 'replace')
            state.record(entry)

            if errors:
                return self.answer(400, {
                    '__type': 'InvalidRequestException',
                    'message': '; '.join(errors)})

            fault = config.get('fault')
            paths = config.get('fault_paths',
                               ['/GetSamplingRules', '/SamplingTargets'])
            if fault and self.path in paths:
                return self.fault(fault)

            if self.path == '/GetSamplingRules':
                return self.rules(config, body)
            reply = targets_reply(config, body)
            self.say(body, reply)
            return self.answer(200, reply)

        def say(self, body, reply):
            line = log and summary(self.path, body, reply)
            if line:
                sys.stdout.write('sampling  %s\n' % line)
                sys.stdout.flush()

        def rules(self, config, body):
            records = rule_records(config)
            size = int(config.get('page_size', 100))
            token = body.get('NextToken')
            start = 0
            if token is not None:
                try:
                    start = int(token.split('-', 1)[1])
                except (IndexError, ValueError):
                    return self.answer(400, {
                        '__type': 'InvalidRequestException',
                        'message': 'unknown NextToken'})
            reply = {'SamplingRuleRecords': records[start:start + size]}
            if start + size < len(records):
                reply['NextToken'] = 'page-%d' % (start + size)
            self.say(body, reply)
            self.answer(200, reply)

        def fault(self, fault):
            if fault == 'http500':
                return self.answer(500, {'__type': 'InternalFailure',
                                         'message': 'stand-in fault'})
            if fault == 'garbage':
                return self.answer(200, raw=b'<html>not JSON</html>')
            if fault.startswith('slow:'):
                time.sleep(float(fault.split(':', 1)[1]))
                return self.answer(200, {'SamplingRuleRecords': [],
                                         'SamplingTargetDocuments': []})
            if fault == 'huge':
                pad = b' ' * (10 * 1024 * 1024)
                return self.answer(200, raw=b'{"SamplingRuleRecords":[]' +
                                   pad + b'}')
            if fault == 'endless':
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.end_headers()
                try:
                    self.wfile.write(b'{"SamplingRuleRecords":[')
                    deadline = time.time() + 120
                    while time.time() < deadline:
                        self.wfile.write(b' ' * 1024)
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:
                    pass
                self.close_connection = True
                return None
            if fault == 'close':
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            return self.answer(500, {'message': 'unknown fault %s' % fault})

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--config', required=True)
    ap.add_argument('--record', required=True)
    ap.add_argument('--model', default=os.environ.get(
        'XRAY_API_MODEL', DEFAULT_MODEL))
    ap.add_argument('--log', action='store_true')
    ap.add_argument('--rules-modified-at-mtime', action='store_true')
    args = ap.parse_args()

    if os.path.exists(args.model):
        model = Model(args.model)
    else:
        model = NoModel()
        sys.stdout.write('no API model at %s (python3-botocore): request '
                         'bodies are not checked\n' % args.model)
    state = State(args.config, args.record, args.rules_modified_at_mtime)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(('127.0.0.1', args.port),
                                 make_handler(model, state, args.log))
    sys.stdout.write('listening on 127.0.0.1:%d\n' % args.port)
    sys.stdout.flush()
    owner = os.getppid()

    def watch():
        # stop with the process that started us
        while os.getppid() == owner:
            time.sleep(0.5)
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()
    server.serve_forever(poll_interval=0.2)


if __name__ == '__main__':
    main()
