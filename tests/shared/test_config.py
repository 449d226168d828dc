"""Config loading: YAML + key=value overrides, typed, unknown keys rejected."""

import dataclasses
from typing import Literal

import pytest

from dlsuite.shared.config import (
    Config,
    ConfigError,
    config_to_yaml,
    describe_fields,
    load_config,
    option,
)


@dataclasses.dataclass(frozen=True)
class Example(Config):
    epochs: int = option(3, "passes")
    rate: float = option(0.1, "learning rate")
    name: str = option("digits", "data")
    flag: bool = option(False, "a switch")
    widths: tuple[int, ...] = option((8, 16), "stages")
    mode: str | None = option(None, "optional")

    def validate(self):
        if self.epochs < 1:
            raise ConfigError("epochs must be >= 1")


def test_overrides_are_typed():
    config = load_config(Example(), None, ["epochs=7", "rate=2e-3", "flag=true", "widths=4,5,6", "mode=x"])
    assert config == Example(epochs=7, rate=0.002, flag=True, widths=(4, 5, 6), mode="x")


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"Unknown config key 'epoch'.*epochs, flag, mode, name, rate, widths"):
        load_config(Example(), None, ["epoch=3"])
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=f"'learning_rate' in {path}"):
        load_config(Example(), path)


@pytest.mark.parametrize(
    "override,message",
    [("epochs=three", "'epochs' must be int"), ("flag=maybe", "true or false"),
     ("epochs=0", "epochs must be >= 1"), ("epochs", "key=value")],
)
def test_bad_values_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Example(), None, [override])


def test_yaml_file_then_command_line_and_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 4\nwidths: [1, 2]\nname: folder:x\n")
    config = load_config(Example(), path, ["epochs=5"])
    assert (config.epochs, config.widths, config.name) == (5, (1, 2), "folder:x")
    again = tmp_path / "resolved.yaml"
    again.write_text(config_to_yaml(config))
    assert load_config(Example(), again) == config


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Example(), tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Example(), bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Example(), bad)


@dataclasses.dataclass(frozen=True)
class WithChoices(Config):
    kind: Literal["gcn", "lcn"] = option("gcn", "normalization")
    size: int = option(8, "image size")

    def validate(self):
        if self.size < 1:
            raise ConfigError("size must be >= 1")


def test_choices_are_written_once_in_the_type_and_shown_in_help():
    assert load_config(WithChoices(), None, ["kind=lcn"]).kind == "lcn"
    with pytest.raises(ConfigError, match=r"'kind' must be one of \['gcn', 'lcn'\], got 'dog'"):
        load_config(WithChoices(), None, ["kind=dog"])
    assert "kind = 'gcn'  gcn | lcn: normalization" in describe_fields(WithChoices)


def test_every_way_of_making_a_config_validates_it():
    """Issue 12: `validate` ran only on the override path; `dataclasses.replace` skipped it."""
    with pytest.raises(ConfigError, match="size must be >= 1"):
        dataclasses.replace(WithChoices(), size=0)
    with pytest.raises(ConfigError, match="'kind' must be one of"):
        dataclasses.replace(WithChoices(), kind="dog")
    with pytest.raises(ConfigError, match="size must be >= 1"):
        WithChoices(size=-1)


def test_every_app_config_checks_itself_on_replace():
    from dlsuite.apps.cli import APPS

    for app in APPS.values():
        config = app.config_class()
        with pytest.raises(ConfigError, match="strategy"):
            dataclasses.replace(config, strategy="everywhere")
        with pytest.raises(ConfigError, match="epochs"):
            dataclasses.replace(config, epochs=0)


def test_the_main_job_summary_shows_numbers_and_words():
    # A speech run's metrics hold its fusion LM's unit ("word") and flags beside its error rates.
    from dlsuite.apps.cli import summary_lines

    summary = {"speech": {"run_dir": "runs/speech/x", "metrics": {"test_cer_beam": 0.25, "lm_unit": "word",
                                                                    "lm_lexicon": True, "epochs": 8}}}
    rows = summary_lines(summary)[3:]
    assert [row.split()[1:3] for row in rows] == [["test_cer_beam", "0.2500"], ["lm_unit", "word"],
                                                  ["lm_lexicon", "True"], ["epochs", "8.0000"]]
