"""Declarative, versioned mappings between vendor records and canonical ones.

A mapping file (YAML) names itself and its version, holds value maps and one
spec per record conversion. A field spec is one of::

    name: Name                          # a dotted path into the source record
    legal_entity: {from: Region__c, value_map: region_to_legal_entity}
    source_system: {const: salesforce}
    close_date: {from: CloseDate, type: date, required: true}
    subsidiary: {from: ctx.subsidiary, wrap: id}   # ctx.* reads the context the flow passes

``type`` is one of str, int, decimal, bool, date. ``wrap: id`` builds a
NetSuite-style reference ``{"id": value}``. Everything is checked when the
file is loaded; errors name the file, the record spec and the field.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quote2cash.errors import BusinessRuleError, MappingError, Owner
from quote2cash.model import SCHEMA_MODELS

_MISSING = object()


class FieldSpec(BaseModel):
    """How one target field is computed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")
    const: Any = None
    value_map: str | None = None
    default: Any = None
    required: bool = False
    type: Literal["str", "int", "decimal", "bool", "date"] | None = None
    wrap: Literal["id"] | None = None
    max_length: int | None = Field(
        default=None, gt=0, description="the longest text the target field holds; longer is refused"
    )
    nullable: bool = Field(default=False, description="an absent value clears the target field")

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if (self.from_ is None) == (self.const is None):
            raise ValueError("give exactly one of 'from' or 'const'")
        return self


class RecordSpec(BaseModel):
    """A conversion from one record shape to another."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="canonical model to validate the result against")
    fields: dict[str, FieldSpec]

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            data = {
                **data,
                "fields": {k: {"from": v} if isinstance(v, str) else v for k, v in data["fields"].items()},
            }
        return data


class MappingFile(BaseModel):
    """The contents of a mapping file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    value_maps: dict[str, dict[str, str]] = Field(default_factory=dict)
    records: dict[str, RecordSpec]

    @model_validator(mode="after")
    def _references(self) -> MappingFile:
        for rname, spec in self.records.items():
            if spec.model is not None and spec.model not in SCHEMA_MODELS:
                raise ValueError(f"records.{rname}.model: unknown canonical model {spec.model!r}")
            for fname, field in spec.fields.items():
                if field.value_map is not None and field.value_map not in self.value_maps:
                    raise ValueError(
                        f"records.{rname}.fields.{fname}.value_map: no value map named {field.value_map!r}"
                    )
        return self


def _get(source: dict[str, Any], ctx: dict[str, Any], path: str) -> Any:
    node: Any = ctx if path.startswith("ctx.") else source
    for part in (path[4:] if path.startswith("ctx.") else path).split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _convert(value: Any, kind: str) -> Any:
    if kind == "str":
        return str(value)
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return Decimal(str(value))
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes", "t")
    if kind == "date":
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    raise AssertionError(kind)


class Mapping:
    """A loaded mapping file."""

    def __init__(self, spec: MappingFile, source: str) -> None:
        self.spec = spec
        self.source = source

    @property
    def label(self) -> str:
        """``name@version``, recorded with every mapped record."""
        return f"{self.spec.name}@{self.spec.version}"

    @classmethod
    def load(cls, name_or_path: str | Path) -> Mapping:
        """Load a mapping file (each connector ships its own ``mapping.yaml``)."""
        path = Path(name_or_path)
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise MappingError(f"cannot read mapping file {path}: {exc.strerror}", record=str(path)) from exc
        except yaml.YAMLError as exc:
            raise MappingError(f"mapping file {path} is not valid YAML: {exc}", record=str(path)) from exc
        try:
            return cls(MappingFile.model_validate(raw), str(path))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
            )
            raise MappingError(f"mapping file {path} is invalid: {problems}", record=str(path)) from exc

    def value(self, map_name: str, key: str) -> str:
        """Look a value up in a value map; an unknown key goes to a person."""
        table = self.spec.value_maps.get(map_name)
        if table is None:
            raise MappingError(f"{self.source}: no value map named {map_name!r}", record=self.source)
        if key not in table:
            known = ", ".join(sorted(table)) or "none"
            raise BusinessRuleError(
                f"'{key}' has no entry in the value map '{map_name}' of mapping {self.label} "
                f"(known values: {known}). Correct the source record or add the value to the map.",
                code="mapping.unmapped_value",
                owner=Owner.SALES_OPS,
                details={"value_map": map_name, "value": key},
            )
        return table[key]

    def apply(
        self,
        record: str,
        source: dict[str, Any],
        ctx: dict[str, Any] | None = None,
        *,
        only: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Compute the target fields of ``record`` from a source record.

        ``only`` names the source fields (and ``ctx.`` values) to carry, for an
        update that must not touch the others; constants are left out then.
        A text longer than a field's ``max_length`` is refused, never truncated.
        """
        spec = self.spec.records.get(record)
        if spec is None:
            raise MappingError(f"{self.source}: no record spec named {record!r}", record=self.source)
        ctx = ctx or {}
        out: dict[str, Any] = {}
        for name, field in spec.fields.items():
            if only is not None and field.from_ not in only:
                continue
            value = field.const if field.from_ is None else _get(source, ctx, field.from_)
            if value is _MISSING or value is None or value == "":
                if field.nullable and field.default is None:
                    out[name] = None
                    continue
                if field.required:
                    raise BusinessRuleError(
                        f"the source record has no value for '{field.from_}', which is required "
                        f"to fill '{name}' (mapping {self.label}, record {record})",
                        code="mapping.required_field_missing",
                        owner=Owner.SALES_OPS,
                        details={"field": field.from_, "target": name},
                    )
                value = field.default
                if value is None:
                    continue
            elif field.value_map is not None:
                value = self.value(field.value_map, str(value))
            if field.type is not None:
                try:
                    value = _convert(value, field.type)
                except (ValueError, InvalidOperation) as exc:
                    raise BusinessRuleError(
                        f"'{field.from_}' holds {value!r}, which is not a valid {field.type} "
                        f"(mapping {self.label}, record {record}, field {name})",
                        code="mapping.invalid_value",
                        owner=Owner.SALES_OPS,
                        details={"field": field.from_, "target": name},
                    ) from exc
            if field.max_length is not None and isinstance(value, str) and len(value) > field.max_length:
                raise BusinessRuleError(
                    f"'{field.from_}' is {len(value)} characters long ({value[:40]}…), but the target "
                    f"field '{name}' holds at most {field.max_length}; nothing was written. Shorten it "
                    f"at the source (mapping {self.label}, record {record}).",
                    code="input.too_long",
                    owner=Owner.SALES_OPS,
                    details={"field": field.from_, "target": name, "max_length": field.max_length},
                )
            out[name] = {"id": str(value)} if field.wrap == "id" else value
        return out

    def to_model(self, record: str, source: dict[str, Any], ctx: dict[str, Any] | None = None) -> BaseModel:
        """Apply a record spec and validate the result as its canonical model."""
        spec = self.spec.records[record]
        data = self.apply(record, source, ctx)
        if spec.model is None:
            raise MappingError(f"{self.source}: records.{record} has no model", record=self.source)
        try:
            return SCHEMA_MODELS[spec.model].model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise BusinessRuleError(
                f"the {spec.model} mapped from {source.get('Id', 'a source record')} is not valid: {problems}",
                code="mapping.invalid_record",
                owner=Owner.SALES_OPS,
                details={"problems": exc.errors(include_url=False, include_context=False)},
            ) from exc
