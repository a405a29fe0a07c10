#!/usr/bin/env python3
"""Checks docs/slip.schema.json against the slip fixtures of the Swift tests.

Every fixture in Tests/SlipwayCoreTests/Fixtures/good must be valid against the schema, and every fixture in
Tests/SlipwayCoreTests/Fixtures/bad must be refused by it, except the few listed in SCHEMA_CANNOT_REFUSE with the
reason. The Swift tests check the same fixtures against SlipCodec, so the two agree on them.

Needs the `jsonschema` package (with `rfc3339-validator`, so that `format: date-time` is asserted).
Usage: scripts/check-schema.py        Exit status: 0 when every check passed, 1 otherwise.
"""

import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "docs" / "slip.schema.json"
FIXTURES = ROOT / "Tests" / "SlipwayCoreTests" / "Fixtures"

# Bad fixtures the schema cannot refuse, and why. Each entry is checked to still hold: a listed fixture that the
# schema does refuse (or, for the not-JSON ones, that parses) is reported as a failure, so the list stays true.
SCHEMA_CANNOT_REFUSE = {
    "malformed-not-json.json": "not JSON at all: refused by the JSON parser before any schema applies",
    "malformed-not-json-nan.json": "NaN is not JSON (RFC 8259): refused by a strict JSON parser before any schema "
    "applies (Python's json module accepts it unless told not to)",
    "malformed-number-out-of-range.json": "1e400 is valid JSON, but beyond a double; JSON Schema cannot bound "
    "numbers inside free-form values (variables), and Python reads it as infinity",
    "invalid-id-trailing-newline.json": "the schema's pattern refuses it under ECMA-262 semantics, which JSON Schema "
    "specifies ('$' is the end of the string), but jsonschema uses Python's re, where '$' also matches before a "
    "final newline",
}
# The not-JSON exceptions: checked by parsing, not by the schema.
NOT_JSON = {"malformed-not-json.json", "malformed-not-json-nan.json"}


class NotJSON(ValueError):
    pass


def load_strict(path):
    """Parses a fixture as RFC 8259 JSON: no NaN or Infinity literals."""

    def refuse_constant(name):
        raise NotJSON(f"{name} is not JSON")

    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NotJSON(str(error)) from error


def first_error(validator, document):
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(part) for part in error.absolute_path) or "(top)"
    message = error.message if len(error.message) <= 160 else error.message[:100] + " ... " + error.message[-50:]
    return f"{where}: {message}"


def main():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    if "date-time" not in validator.format_checker.checkers:
        print("date-time is not asserted: install rfc3339-validator", file=sys.stderr)
        return 1

    passed, failed = 0, 0

    def report(ok, name, detail):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"  ok    {name}: {detail}")
        else:
            failed += 1
            print(f"  FAIL  {name}: {detail}")

    good = sorted((FIXTURES / "good").glob("*.json"))
    bad = sorted((FIXTURES / "bad").glob("*.json"))
    if not good or not bad:
        print(f"no fixtures found under {FIXTURES}", file=sys.stderr)
        return 1

    print("good fixtures: valid against the schema")
    for path in good:
        try:
            document = load_strict(path)
        except NotJSON as error:
            report(False, path.name, f"not JSON: {error}")
            continue
        error = first_error(validator, document)
        report(error is None, path.name, "valid" if error is None else f"refused: {error}")

    print("bad fixtures: refused by the schema")
    for path in bad:
        name = path.name
        try:
            document = load_strict(path)
        except NotJSON as error:
            if name in NOT_JSON:
                report(True, name, f"not JSON, as listed ({error})")
            else:
                report(False, name, f"not JSON, but not listed as such: {error}")
            continue
        if name in NOT_JSON:
            report(False, name, "listed as not JSON, but parses")
            continue
        error = first_error(validator, document)
        if name in SCHEMA_CANNOT_REFUSE:
            if error is None:
                report(True, name, f"accepted, as listed: {SCHEMA_CANNOT_REFUSE[name]}")
            else:
                report(False, name, f"listed as one the schema cannot refuse, but it does: {error}")
        else:
            report(error is not None, name, f"refused: {error}" if error else "ACCEPTED by the schema")

    for name in sorted(set(SCHEMA_CANNOT_REFUSE) - {path.name for path in bad}):
        report(False, name, "listed in SCHEMA_CANNOT_REFUSE but there is no such bad fixture")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
