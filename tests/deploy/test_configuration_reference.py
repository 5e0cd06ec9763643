"""docs/configuration.md is the generator's output for the settings classes as they are now."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools import config_reference as reference


def test_the_reference_is_up_to_date() -> None:
    written = reference.OUTPUT.read_text() if reference.OUTPUT.exists() else ""
    assert written == reference.render(), (
        f"{reference.OUTPUT} is out of date with the settings classes: regenerate it with "
        f"`{reference.REGENERATE}` (or `make docs`) and commit the result"
    )


def test_every_setting_of_every_class_is_documented() -> None:
    text = reference.OUTPUT.read_text()
    for section in reference.SECTIONS:
        body = text.split(f"\n## {section.title}\n", 1)[1].split("\n## ", 1)[0]
        rows = set(re.findall(r"^\| `([A-Z0-9_]+)`", body, flags=re.MULTILINE))
        assert rows == set(reference.setting_variables(section.settings)), section.title


def test_every_setting_says_what_it_does() -> None:
    undescribed = [
        f"{section.settings.__name__}.{row.names[0]}"
        for section in reference.SECTIONS
        for row in reference.variables(section)
        if not row.description.strip()
    ]
    assert undescribed == [], "settings without a description (Field(description=...)) in the reference"


def test_the_required_settings_named_exist() -> None:
    for section in reference.SECTIONS:
        assert set(section.required) <= set(section.settings.model_fields), section.title


def test_a_secret_default_is_never_printed_and_constraints_are() -> None:
    class Example(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="EXAMPLE_")

        password: SecretStr = SecretStr("hunter2-default")
        workers: int = Field(default=4, ge=1, le=64, description="worker | threads")
        mode: str = Field(default="rw", validation_alias="EXAMPLE_LEGACY_MODE")
        token: str

    section = reference.Section("Example", "example", Example, "An example.", {"workers": "yes"})
    text = reference.render_section(section)
    assert "hunter2" not in text
    assert "| `EXAMPLE_PASSWORD` | string, secret | (secret) |" in text
    assert "| `EXAMPLE_WORKERS` | integer (>= 1, <= 64) | `4` | yes | worker \\| threads |" in text
    assert "| `EXAMPLE_LEGACY_MODE` |" in text
    assert "| `EXAMPLE_TOKEN` | string | - | yes |" in text


def test_the_command_prints_the_reference(capsys) -> None:
    assert reference.main([]) == 0
    assert capsys.readouterr().out == reference.render()
