"""`o2c schemas check`: can the current schemas read everything ever released?

Every current `schemas/<role>.avsc` is the reader; every released version of it under
`schemas/released/N/` is a writer whose data may still sit in Kafka (and whose
fingerprint the codec still resolves). A change passes when the current schema can read
data of every release (Avro resolution rules, checked by the `avro` library's
ReaderWriterCompatibilityChecker). The checker's own report loses which field broke
inside unions, so this module walks reader and writer side by side to name it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    lookup_writer_field,
    schema_name_equals,
)
from avro.errors import AvroException

from streams.contracts.schemas import RELEASED_DIR, released_versions, single_object_fingerprint

__all__ = ["check", "main"]

_NAMED = ("record", "enum", "fixed")


def check(schemas_dir: Path | str) -> list[str]:
    """Problems that make the current schemas unable to read released data; [] if none.

    Compares against every release (newest first), so a chain of individually
    compatible steps cannot strand old data; also reports a schema of the newest
    release whose current file was removed.
    """
    schemas_dir = Path(schemas_dir)
    versions = released_versions(schemas_dir)
    if not versions:
        return []
    problems: list[str] = []
    newest = versions[-1]
    newest_dir = schemas_dir / RELEASED_DIR / str(newest)
    for released in sorted(newest_dir.glob("*.avsc")):
        if not (schemas_dir / released.name).is_file():
            problems.append(
                f"{released.name}: removed, but released/{newest}/{released.name} is released: "
                "data written with it could no longer be read (restore the file)"
            )

    readers: dict[str, avro.schema.Schema] = {}
    checked: set[tuple[str, bytes]] = set()  # an identical older copy adds nothing
    for current in sorted(schemas_dir.glob("*.avsc")):
        try:
            readers[current.stem] = _parse(current)
        except (OSError, ValueError, AvroException) as exc:
            problems.append(f"{current.name}: not a valid Avro schema: {exc}")
    for version in reversed(versions):
        for released in sorted((schemas_dir / RELEASED_DIR / str(version)).glob("*.avsc")):
            reader = readers.get(released.stem)
            if reader is None:
                continue
            where = f"{released.stem}.avsc cannot read data written with released/{version}"
            try:
                writer_json = json.loads(released.read_text(encoding="utf-8"))
                writer = avro.schema.parse(json.dumps(writer_json))
            except (OSError, ValueError, AvroException) as exc:
                problems.append(f"released/{version}/{released.name}: not a valid Avro schema: {exc}")
                continue
            identity = (released.stem, single_object_fingerprint(writer_json))
            if identity in checked:
                continue
            checked.add(identity)
            problems.extend(f"{where}: {problem}" for problem in explain(reader, writer))
    return problems


def explain(reader: avro.schema.Schema, writer: avro.schema.Schema) -> list[str]:
    """Why `reader` cannot read data written with `writer`, one line per place; []
    when it can."""
    checker = ReaderWriterCompatibilityChecker()
    return list(_explain(checker, reader, writer, _display_name(reader)))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the problems; exit status 1 if there are any (`o2c schemas check`)."""
    parser = argparse.ArgumentParser(
        prog="o2c schemas check",
        description="Check that the current schemas can read data of every released version.",
    )
    parser.add_argument("schemas_dir", type=Path, nargs="?", default=None, help="default: O2C_SCHEMAS_DIR")
    parser.add_argument("--schemas-dir", dest="schemas_dir_option", type=Path, default=None, help="same")
    args = parser.parse_args(argv)
    schemas_dir = args.schemas_dir_option or args.schemas_dir
    if schemas_dir is None:
        from streams.settings import load_settings

        schemas_dir = load_settings().schemas_dir
    versions = released_versions(Path(schemas_dir))
    problems = check(schemas_dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"schemas check: {len(problems)} incompatible change(s) in {schemas_dir}", file=sys.stderr)
        return 1
    if not versions:
        print(f"schemas check: no release under {schemas_dir}/{RELEASED_DIR}/: nothing to compare")
    else:
        print(f"schemas check: OK, {schemas_dir} reads released/{', released/'.join(map(str, versions))}")
    return 0


def _parse(path: Path) -> avro.schema.Schema:
    return avro.schema.parse(path.read_text(encoding="utf-8"))


def _compatible(checker: ReaderWriterCompatibilityChecker, reader: avro.schema.Schema, writer: avro.schema.Schema) -> bool:
    result = checker.get_compatibility(reader, writer)
    return result.compatibility is SchemaCompatibilityType.compatible


def _explain(
    checker: ReaderWriterCompatibilityChecker,
    reader: avro.schema.Schema,
    writer: avro.schema.Schema,
    path: str,
) -> Iterator[str]:
    if _compatible(checker, reader, writer):
        return
    r_type, w_type = reader.type, writer.type
    if w_type == "union":
        for branch in writer.schemas:
            if r_type == "union":
                match = _matching_branch(checker, reader.schemas, branch)
                if match is None:
                    yield f"{path}: the union no longer has a branch for {_type_label(branch)}"
                    continue
                yield from _explain(checker, match, branch, _branch_path(path, branch))
            else:
                yield from _explain(checker, reader, branch, path)
    elif r_type == "union":
        match = _matching_branch(checker, reader.schemas, writer)
        if match is None:
            yield f"{path}: no branch of the union can read {_type_label(writer)}"
        else:
            yield from _explain(checker, match, writer, path)
    elif r_type != w_type:
        yield f"{path}: type changed from {_type_label(writer)} to {_type_label(reader)}"
    elif r_type in _NAMED and not schema_name_equals(reader, writer):
        yield f"{path}: renamed from {writer.fullname} to {reader.fullname} (keep the old name in aliases)"
    elif r_type == "record":
        for field in reader.fields:
            old = lookup_writer_field(writer_schema=writer, reader_field=field)
            field_path = f"{path}.{field.name}"
            if old is None:
                if not field.has_default:
                    yield f"{field_path}: new field without a default (data written before has no value for it)"
            else:
                yield from _explain(checker, field.type, old.type, field_path)
    elif r_type == "enum":
        lost = [s for s in writer.symbols if s not in reader.symbols]
        yield f"{path}: enum {reader.name} lost symbol(s) {', '.join(lost)} and has no default to read them as"
    elif r_type == "array":
        yield from _explain(checker, reader.items, writer.items, f"{path}[]")
    elif r_type == "map":
        yield from _explain(checker, reader.values, writer.values, f"{path}{{}}")
    elif r_type == "fixed":
        yield f"{path}: fixed size changed from {writer.size} to {reader.size}"
    else:
        yield f"{path}: {_type_label(reader)} cannot read {_type_label(writer)}"


def _matching_branch(
    checker: ReaderWriterCompatibilityChecker,
    branches: Sequence[avro.schema.Schema],
    writer: avro.schema.Schema,
) -> avro.schema.Schema | None:
    """The reader branch that should read a writer branch: the same named type, else
    the first one compatible, else one of the same type (to explain why not)."""
    if writer.type in _NAMED:
        for branch in branches:
            if branch.type == writer.type and schema_name_equals(branch, writer):
                return branch
    for branch in branches:
        if _compatible(checker, branch, writer):
            return branch
    for branch in branches:
        if branch.type == writer.type and writer.type not in _NAMED:
            return branch
    return None


def _branch_path(path: str, branch: avro.schema.Schema) -> str:
    return f"{path}({branch.name})" if branch.type in _NAMED else path


def _display_name(schema: avro.schema.Schema) -> str:
    return schema.name if schema.type in _NAMED else schema.type


def _type_label(schema: avro.schema.Schema) -> str:
    if schema.type in _NAMED:
        return f"{schema.type} {schema.name}"
    logical = schema.props.get("logicalType")
    return f"{schema.type} ({logical})" if logical else str(schema.type)
