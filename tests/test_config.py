"""Bad configuration and mappings fail with a message naming the file and the field."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml

from quote2cash.config import load_config
from quote2cash.connectors.salesforce.adapter import MAPPING as SALESFORCE_MAPPING
from quote2cash.errors import BusinessRuleError, ConfigError, MappingError
from quote2cash.mappings import Mapping
from quote2cash.runtime.hub import Hub
from quote2cash.sandbox.seed import SANDBOX_ENV, hub_config


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "q2c.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


#: A sandbox config keeps its audit key beside its SQLite file: a folder of the test run's own.
_DB = Path(tempfile.mkdtemp(prefix="q2c-config-")) / "hub.sqlite"


def _valid() -> dict:
    return hub_config("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", f"sqlite:///{_DB}")


def test_valid_config_loads_and_keeps_secrets_out_of_dumps(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, _valid()), env=SANDBOX_ENV)
    assert config.systems[config.system_for("erp")].secret("token_secret") == "q2c-ts"
    assert "q2c-ts" not in config.model_dump_json() and "q2c-ts" not in repr(config)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"q2c.yaml is not valid YAML at line 3, column 1"):
        load_config(_write(tmp_path, "systems:\n  crm: [unclosed\n"), env=SANDBOX_ENV)


def test_unknown_system_kind_names_the_field(tmp_path: Path) -> None:
    data = _valid()
    data["systems"]["crm"]["kind"] = "dynamics"
    with pytest.raises(
        ConfigError,
        match=r"systems\.crm\.kind: no installed connector has kind 'dynamics' \(installed: [^)]*kantata, [^)]*salesforce[^)]*\)",
    ):
        load_config(_write(tmp_path, data), env=SANDBOX_ENV)


def test_missing_secret_names_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in SANDBOX_ENV.items() if k != "Q2C_SANDBOX_NS_TOKEN_SECRET"}
    with pytest.raises(
        ConfigError,
        match=r"systems\.erp\.token_secret_env names the environment variable "
        r"'Q2C_SANDBOX_NS_TOKEN_SECRET', which is not set",
    ):
        load_config(_write(tmp_path, _valid()), env=env)


def test_typo_in_a_field_is_refused(tmp_path: Path) -> None:
    data = _valid()
    data["legal_entities"]["US01"]["base_curency"] = "USD"
    with pytest.raises(
        ConfigError, match=r"legal_entities\.US01\.base_curency: Extra inputs are not permitted"
    ):
        load_config(_write(tmp_path, data), env=SANDBOX_ENV)


def test_environment_overrides_the_database(tmp_path: Path) -> None:
    env = {**SANDBOX_ENV, "Q2C_DATABASE_URL": "postgresql://db/hub"}
    assert load_config(_write(tmp_path, _valid()), env=env).hub.database_url == "postgresql://db/hub"


def test_invalid_mapping_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "version": 1,
                "value_maps": {},
                "records": {
                    "customer_from_salesforce": {
                        "model": "Customer",
                        "fields": {"legal_entity": {"from": "Region__c", "value_map": "regions"}},
                    }
                },
            }
        )
    )
    with pytest.raises(
        MappingError, match=r"bad.yaml is invalid: .*legal_entity\.value_map: no value map named 'regions'"
    ):
        Mapping.load(bad)


def test_unmapped_value_goes_to_a_person_with_the_known_values() -> None:
    mapping = Mapping.load(SALESFORCE_MAPPING)
    with pytest.raises(BusinessRuleError) as info:
        mapping.apply("customer_from_salesforce", {"Id": "001", "Name": "X", "Region__c": "LATAM"})
    assert info.value.code == "mapping.unmapped_value"
    assert "'LATAM' has no entry in the value map 'region_to_legal_entity'" in info.value.message
    assert "DACH" in info.value.message


def test_a_system_mapping_file_replaces_the_connector_one_and_a_bad_one_names_itself(tmp_path: Path) -> None:
    data = _valid()
    custom = tmp_path / "crm-mapping.yaml"
    custom.write_text(SALESFORCE_MAPPING.read_text().replace("DACH: DE01", "DACH & Nordics: DE01"))
    data["systems"]["crm"]["mapping"] = str(custom)
    hub = Hub(load_config(_write(tmp_path, data), env=SANDBOX_ENV))
    try:
        crm = hub.systems["crm"]
        assert crm.mapping.value("region_to_legal_entity", "DACH & Nordics") == "DE01"  # type: ignore[attr-defined]
    finally:
        hub.engine.dispose()
    custom.write_text("name: broken\nversion: 1\nrecords: {x: {fields: {a: {value_map: nowhere}}}}\n")
    with pytest.raises(MappingError, match=r"crm-mapping\.yaml is invalid"):
        Hub(load_config(_write(tmp_path, data), env=SANDBOX_ENV))


def test_a_role_two_systems_could_play_must_be_named(tmp_path: Path) -> None:
    data = _valid()
    data["systems"]["erp2"] = dict(data["systems"]["erp"])
    config = load_config(_write(tmp_path, data), env=SANDBOX_ENV)
    with pytest.raises(
        ConfigError, match=r"systems erp, erp2 can all play the erp role; name one under `roles"
    ):
        config.system_for("erp")
    data["roles"] = {"erp": "erp2"}
    assert load_config(_write(tmp_path, data), env=SANDBOX_ENV).system_for("erp") == "erp2"
    data["roles"] = {"erp": "crm"}
    with pytest.raises(ConfigError, match=r"roles.erp: system 'crm' \(salesforce\) cannot play the erp role"):
        load_config(_write(tmp_path, data), env=SANDBOX_ENV)
