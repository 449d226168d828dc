"""Config loading: YAML + key=value overrides, typed, unknown keys rejected."""

import dataclasses

import pytest

from dlsuite.shared.config import ConfigError, config_to_yaml, load_config, option


@dataclasses.dataclass(frozen=True)
class Example:
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
