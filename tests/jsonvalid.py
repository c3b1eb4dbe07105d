#!/usr/bin/env python3
"""jsonvalid.py SCHEMA [FILE]: validate one JSON document (FILE or stdin)
against a JSON Schema (draft 2020-12 or 07, as the schema's $schema says).
Exits 0 when valid, 1 with each violation on stderr, 2 when the document
or the schema cannot be read.  Used by tests/lib.sh json_valid."""
import json
import sys

import jsonschema


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: jsonvalid.py SCHEMA [FILE]", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            schema = json.load(f)
        if len(sys.argv) == 3:
            with open(sys.argv[2], encoding="utf-8") as f:
                doc = json.load(f)
        else:
            doc = json.load(sys.stdin)
    except (OSError, ValueError) as e:
        print("jsonvalid: %s" % e, file=sys.stderr)
        return 2
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "(document)"
        print("jsonvalid: %s: %s" % (where, e.message), file=sys.stderr)
    return 1 if errors else 0


sys.exit(main())
