#!/usr/bin/env python3
"""Validate AWS X-Ray segment documents against the draft-4 JSON schema.

Usage:
    validate_segments.py SCHEMA DOC.json...   validate files
    validate_segments.py SCHEMA < FRAMES      validate framed documents

FRAMES is a sequence of "<byte length>\\n<document bytes>" records (what
XRayTest::validate_documents sends), so documents are passed byte for byte.

Prints one line per problem ("document K: /json/path: message", K counted
from 1 in input order, or the file name) and exits with 0 when every document
is valid, 1 when some are not, 2 when it cannot run (bad usage, missing
jsonschema, unreadable schema).
"""

import json
import sys

MAX_MESSAGE = 300


def read_frames(data):
    """Split the framed stdin into document byte strings."""
    docs = []
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        size = int(data[pos:nl])
        start = nl + 1
        if start + size > len(data):
            raise ValueError("truncated frame %d" % (len(docs) + 1))
        docs.append(data[start:start + size])
        pos = start + size
    return docs


def shorten(text):
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        import jsonschema
    except ImportError as exc:
        print("validate_segments: cannot import jsonschema (%s) with %s"
              % (exc, sys.executable))
        return 2
    try:
        with open(argv[1], "rb") as fh:
            schema = json.load(fh)
        jsonschema.Draft4Validator.check_schema(schema)
    except Exception as exc:  # any problem with the schema itself
        print("validate_segments: bad schema %s: %s" % (argv[1], exc))
        return 2
    validator = jsonschema.Draft4Validator(schema)

    if len(argv) > 2:
        docs = []
        for path in argv[2:]:
            with open(path, "rb") as fh:
                docs.append((path, fh.read()))
    else:
        try:
            frames = read_frames(sys.stdin.buffer.read())
        except ValueError as exc:
            print("validate_segments: bad input: %s" % exc)
            return 2
        docs = [("document %d" % (i + 1), raw) for i, raw in enumerate(frames)]

    problems = 0
    for label, raw in docs:
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            print("%s: not valid JSON: %s" % (label, shorten(str(exc))))
            problems += 1
            continue
        errors = sorted(validator.iter_errors(doc),
                        key=lambda e: [str(p) for p in e.absolute_path])
        for err in errors:
            path = "/" + "/".join(str(p) for p in err.absolute_path)
            print("%s: %s: %s" % (label, path, shorten(err.message)))
            problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
