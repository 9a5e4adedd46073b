"""Flat-file connector: the ERP port over CSV files in a folder shared with a legacy ERP."""

from quote2cash.connectors.flatfile.adapter import FlatFileErp, build
from quote2cash.connectors.flatfile.client import Answer, FlatFileClient, Manifest
from quote2cash.connectors.flatfile.settings import FlatFileSettings
from quote2cash.registry import Connector

CONNECTOR = Connector(kind="flatfile", roles=("erp",), settings=FlatFileSettings, build=build)

__all__ = ["CONNECTOR", "Answer", "FlatFileClient", "FlatFileErp", "FlatFileSettings", "Manifest"]
