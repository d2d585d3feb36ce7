"""Fixtures for the alert tests: the pinned GCN schema (npm), the VOEvent XSD (Comet),
trigger records as the detectors make them, and a persistent MQTT subscriber."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from lxml import etree
from referencing import Registry, Resource

from nrt.alerts.model import GCN_SCHEMA_VERSION, schema_text
from tests.support.mosquitto import Mosquitto
from tests.support.services import require_binary

HERE = Path(__file__).parent
GCN_PACKAGE = HERE / "node_modules" / "@nasa-gcn" / "schema"
COMET_VERSION = "3.1.0"


def _installed_version() -> str | None:
    manifest = GCN_PACKAGE / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="session")
def gcn_package() -> Path:
    """@nasa-gcn/schema installed by `npm ci` from tests/alerts/package-lock.json."""
    if _installed_version() != GCN_SCHEMA_VERSION:
        npm = require_binary("npm")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {HERE} failed:\n{done.stderr}")
    assert _installed_version() == GCN_SCHEMA_VERSION, "package-lock pins another version"
    return GCN_PACKAGE


@pytest.fixture(scope="session")
def alert_validator(gcn_package: Path) -> Draft202012Validator:
    """nrt's trigger schema, its $refs resolved to the installed package's files."""
    resources_ = []
    for path in sorted((gcn_package / "gcn").rglob("*.schema.json")):
        contents = json.loads(path.read_text())
        resources_.append((contents["$id"], Resource.from_contents(contents)))
    ours = json.loads(schema_text())
    Draft202012Validator.check_schema(ours)

    def retrieve_refused(uri: str):  # every $ref must come from the package, not the web
        raise LookupError(f"{uri} is not in @nasa-gcn/schema {GCN_SCHEMA_VERSION}")

    registry = Registry(retrieve=retrieve_refused).with_resources(resources_)
    return Draft202012Validator(
        ours, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture(scope="session")
def voevent_schema() -> etree.XMLSchema:
    """The VOEvent 2.0 XSD as shipped by Comet (pinned in pyproject's test extra)."""
    from importlib.metadata import version

    assert version("comet") == COMET_VERSION
    xsd = resources.files("comet") / "schema" / "VOEvent-v2.0.xsd"
    return etree.XMLSchema(etree.parse(str(xsd)))


def broker_in(workdir: Path, **options) -> Mosquitto:
    """A mosquitto for the alert tests (tests/support runs it as the current user)."""
    return Mosquitto(workdir=workdir, **options)


@pytest.fixture
def broker(tmp_path: Path):
    """A started persistent broker for the alert tests."""
    started = broker_in(tmp_path / "mosquitto").start()
    yield started
    started.stop()
