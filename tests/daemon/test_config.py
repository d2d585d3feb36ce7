"""Configuration: defaults that work, every key documented, clear errors."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from nrt import config
from nrt.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "nrt.example.toml"


def test_example_documents_every_key_with_its_default():
    data = tomllib.loads(EXAMPLE.read_text())
    parsed = config.parse(data, str(EXAMPLE))
    assert parsed == config.Config(), "the example's values must be the defaults"
    for section, fields in config.schema().items():
        assert section in data, f"[{section}] missing from nrt.example.toml"
        assert set(data[section]) == set(fields), f"[{section}] keys differ from the schema"
    text = EXAMPLE.read_text()
    for section, fields in config.schema().items():
        for name, f in fields.items():
            if f.metadata.get("reload"):
                line = next(ln for ln in text.splitlines() if re.match(rf"{name}\s*=", ln))
                assert "(reload)" in line, f"{section}.{name} is reloadable: say so in the example"


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "nrt.toml"
    path.write_text("")
    assert config.load(path) == config.Config()


def test_sizes_and_durations_are_converted(tmp_path):
    c = config.parse({"cache": {"max_bytes": "2G", "max_age": "12h"}, "quicklook": {"grace": 30}})
    assert c.cache.max_bytes == 2 << 30 and c.cache.max_age == 43200.0 and c.quicklook.grace == 30.0


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[trigger]\nfar_per_day = -1",
            r"\[trigger\] far_per_day = -1: allowed: a number >= 1e-06",
        ),
        (
            "[trigger]\nfar_per_dai = 1",
            r"\[trigger\] far_per_dai: unknown key; did you mean 'far_per_day'\?",
        ),
        ("[trigers]\nx = 1", r"\[trigers\]: unknown section; did you mean \[trigger\]\?"),
        ('[logging]\nlevel = "LOUD"', r"level = 'LOUD': allowed: one of 'DEBUG', 'INFO'"),
        ('[cache]\nmax_bytes = "lots"', r"max_bytes = 'lots': allowed: a size like 512M"),
        ('[inbox]\nenabled = "yes"', r"enabled = 'yes': allowed: true or false"),
        (
            '[trigger]\ninstruments = ["acs", "gbm"]',
            r"instruments = \['acs', 'gbm'\]: allowed: one of 'acs', 'isgri'",
        ),
        ("[trigger\nx=1", r"not valid TOML"),
    ],
)
def test_config_check_names_file_key_value_and_what_is_allowed(tmp_path, toml, expected):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert str(path) in result.output
    assert re.search(expected, result.output), result.output


def test_all_problems_are_reported_at_once():
    with pytest.raises(config.ConfigError) as info:
        config.parse({"trigger": {"far_per_day": 0}, "cache": {"memory_bytes": "x"}})
    assert len(info.value.problems) == 2


def test_secrets_never_appear_in_output(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    path = tmp_path / "nrt.toml"
    path.write_text(
        f'[mqtt]\nusername = "nrt"\npassword_file = "{secret}"\nkey_file = "/secret/key.pem"\n'
    )
    c = config.load(path)
    assert c.mqtt_password() == "hunter2"
    shown = CliRunner().invoke(main, ["config", "check", "--json", str(path)]).output
    assert "hunter2" not in shown and str(secret) not in shown and "key.pem" not in shown
    assert "hunter2" not in repr(c.redacted())


def test_password_from_systemd_credentials(tmp_path, monkeypatch):
    (tmp_path / "mqtt-password").write_text("s3cret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert config.Config().mqtt_password() == "s3cret"


def test_reload_changes_separates_reloadable_keys():
    old = config.Config()
    new = dataclasses.replace(
        old,
        trigger=dataclasses.replace(old.trigger, far_per_day=0.1),
        mqtt=dataclasses.replace(old.mqtt, url="mqtt://elsewhere:1883"),
    )
    applied, restart = config.reload_changes(old, new)
    assert applied == ["trigger.far_per_day"] and restart == ["mqtt.url"]


def test_check_limits_are_validated_by_the_installed_checks(tmp_path):
    path = tmp_path / "nrt.toml"
    path.write_text("[checks.pixels]\nhot_factr = 3.0\n[checks.nonsense]\nx = 1\n")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert "checks.pixels.hot_factr: unknown key; pixels takes" in result.output
    path.write_text("[checks.pixels]\nhot_factor = 50.0\n")
    assert CliRunner().invoke(main, ["config", "check", str(path)]).exit_code == 0
