"""Declarative, versioned mappings between vendor records and the canonical model."""

from quote2cash.mappings.engine import FieldSpec, Mapping, MappingFile, RecordSpec

__all__ = ["FieldSpec", "Mapping", "MappingFile", "RecordSpec"]
