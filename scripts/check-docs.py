#!/usr/bin/env python3
"""Checks that the docs name what the code names, so the two cannot drift apart unnoticed.

Read from the Swift sources, then looked for in the docs:
- every reason code a message can be parked with (SlipRejection.Code, and the codes the runtime passes to a park)
  in docs/dead-letters.md, written as `code`;
- every hop outcome (HopOutcome) and slip state (SlipState) in docs/slip-format.md, written as `value`;
- every size limit's default (SlipLimits), the nesting limit (SlipCodec.maxNestingDepth) and the number of log
  entries a slip carries (SlipTransitions' carriedLogEntries) in docs/slip-format.md, the nesting and variables limits
  in the JSON Schema's description too, and every SLIPWAY_MAX_* variable somewhere in docs/;
- every processor setting (ProcessorSetting.all) in docs/configuration.md's table, a row each with its option, its
  variable, its secret's _FILE variable and its default, and no row for a setting the code does not have.

Run by scripts/test.sh (make test). Exit 1 with one line per thing missing.
"""
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ROOT / "Sources"
DOCS = ROOT / "docs"


def read(path: pathlib.Path) -> str:
    return path.read_text(encoding="utf-8")


def swift_sources() -> dict[pathlib.Path, str]:
    return {path: read(path) for path in sorted(SOURCES.rglob("*.swift"))}


def park_codes(sources: dict[pathlib.Path, str]) -> set[str]:
    codes = set()
    for text in sources.values():
        codes.update(re.findall(r'static let \w+ = Code\(rawValue: "([a-z0-9-]+)"\)', text))
        # Literal codes handed to a park, e.g. park(..., code: "poison", ...) or park(body:, code: "compensation-failed")
        # (code lines only: a doc comment may show `code: "..."` as an example of something else)
        code_lines = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
        codes.update(re.findall(r'\bcode: "([a-z0-9-]+)"', code_lines))
    return codes


def enum_raw_values(text: str, name: str) -> list[str]:
    match = re.search(r"enum " + name + r"\b[^{]*\{(.*?)\n\}", text, re.S)
    if not match:
        raise SystemExit(f"check-docs.py: enum {name} not found in the sources")
    values = []
    for line in match.group(1).splitlines():
        line = line.strip()
        if re.match(r"(public |private |internal )?(var|func|static|init)\b", line):
            break  # the cases come first; what follows (a computed property's switch) is not one
        if not line.startswith("case "):
            continue
        for item in line[len("case "):].split(","):
            item = item.strip()
            if "(" in item:  # an associated value: not a raw-value enum case
                continue
            raw = re.match(r'(\w+)\s*=\s*"([^"]+)"', item)
            values.append(raw.group(2) if raw else item)
    return values


def number_forms(value: int) -> list[str]:
    forms = [str(value), f"{value:,}"]
    if value % (1 << 20) == 0:
        forms.append(f"{value >> 20} MiB")
    if value % 1024 == 0:
        forms.append(f"{value // 1024} KiB")
    return forms


def evaluate(expression: str) -> int:
    expression = expression.replace("_", "")
    if not re.fullmatch(r"[0-9 <>()*+]+", expression):
        raise SystemExit(f"check-docs.py: cannot read the limit '{expression}'")
    return int(eval(expression))  # digits and shifts only, checked above


def processor_settings(sources: dict[pathlib.Path, str]) -> list[dict[str, str]]:
    """The settings table of Sources/Slipway/ProcessorSetting.swift: key, flag, environment, file, default."""
    text = sources[SOURCES / "Slipway" / "ProcessorSetting.swift"]
    settings = []
    for block in re.findall(r"static let \w+ = ProcessorSetting\((.*?)\)\n", text, re.S):
        fields = dict(re.findall(r'\b(key|flag|environment|defaultValue): "([^"]*)"', block))
        if "secretFile:" in block:
            fields["file"] = fields["environment"] + "_FILE"
        settings.append(fields)
    if not settings:
        raise SystemExit("check-docs.py: no ProcessorSetting found in Sources/Slipway/ProcessorSetting.swift")
    return settings


def check_settings_table(settings: list[dict[str, str]], missing: list[str]) -> None:
    page = read(DOCS / "configuration.md")
    rows = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # `a\|b` is one cell
            for line in page.splitlines() if line.startswith("|") and "`" in line]
    for setting in settings:
        name = setting.get("environment") or setting["flag"]
        row = next((row for row in rows if any(cell.startswith(f"`{name}`") or cell.startswith(f"`{name} ")
                                               for cell in row)), None)
        if row is None:
            missing.append(f"docs/configuration.md has no row for the setting {name}")
            continue
        text = " | ".join(row)
        for field in ("flag", "environment", "file"):
            if field in setting and f"`{setting[field]}" not in text:
                missing.append(f"docs/configuration.md's row for {name} does not name `{setting[field]}`")
        if setting["defaultValue"] and setting["defaultValue"] not in row[3]:  # the Default column
            missing.append(f"docs/configuration.md's row for {name} does not give its default ({setting['defaultValue']})")
    known = {setting.get("environment") for setting in settings} | {setting.get("file") for setting in settings}
    for row in rows:
        for variable in re.findall(r"`(SLIPWAY_[A-Z_]+)", " | ".join(row)):
            if variable not in known:
                missing.append(f"docs/configuration.md lists {variable}, which is no processor setting")


def main() -> int:
    sources = swift_sources()
    everything = "\n".join(sources.values())
    missing: list[str] = []

    dead_letters = read(DOCS / "dead-letters.md")
    for code in sorted(park_codes(sources)):
        if f"`{code}`" not in dead_letters:
            missing.append(f"docs/dead-letters.md does not list the park reason code `{code}`")

    slip_format = read(DOCS / "slip-format.md")
    for enum in ("HopOutcome", "SlipState"):
        for value in enum_raw_values(everything, enum):
            if f"`{value}`" not in slip_format:
                missing.append(f"docs/slip-format.md does not name the {enum} value `{value}`")

    limits = re.search(r"init\(maxMessageBytes: Int = ([^,]+), maxItinerarySteps: Int = ([^,]+), "
                       r"maxVariablesBytes: Int = ([^)]+)\)", everything)
    if not limits:
        raise SystemExit("check-docs.py: SlipLimits' defaults not found in the sources")
    for name, expression in zip(("message size", "itinerary length", "variables size"), limits.groups()):
        value = evaluate(expression)
        if not any(form in slip_format for form in number_forms(value)):
            missing.append(f"docs/slip-format.md does not state the {name} limit ({' or '.join(number_forms(value))})")

    nesting = re.search(r"static let maxNestingDepth = (\d+)", everything)
    carried = re.search(r"static let carriedLogEntries = (\d+)", everything)
    if not nesting or not carried:
        raise SystemExit("check-docs.py: maxNestingDepth or carriedLogEntries not found in the sources")
    depth, entries = int(nesting.group(1)), int(carried.group(1))
    if not re.search(rf"\b{depth}\b[^.\n]*(nest|level)|(nest|level)[^.\n]*\b{depth}\b", slip_format):
        missing.append(f"docs/slip-format.md does not state the nesting limit ({depth} levels)")
    if not re.search(rf"\b{entries}\b[^.\n]*(log )?entries|newest {entries}\b", slip_format):
        missing.append(f"docs/slip-format.md does not state how many log entries a slip carries ({entries})")

    schema_description = json.loads(read(DOCS / "slip.schema.json")).get("description", "")
    if not re.search(rf"\b{depth}\b", schema_description):
        missing.append(f"docs/slip.schema.json's description does not state the nesting limit ({depth} levels)")
    variables_limit = evaluate(limits.group(3))
    if not any(form in schema_description for form in number_forms(variables_limit)):
        missing.append("docs/slip.schema.json's description does not state the variables size limit "
                       f"({' or '.join(number_forms(variables_limit))})")

    all_docs = "\n".join(read(path) for path in sorted(DOCS.glob("*.md")))
    for variable in sorted(set(re.findall(r'"(SLIPWAY_MAX_[A-Z_]+)"', everything))):
        if variable not in all_docs:
            missing.append(f"no page in docs/ names {variable}")

    check_settings_table(processor_settings(sources), missing)

    for line in missing:
        print(f"check-docs.py: {line}")
    if missing:
        print(f"check-docs.py: {len(missing)} thing(s) the code names are missing from the docs")
        return 1
    print("check-docs.py: every park code, outcome, state, limit and setting the code names is in the docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
