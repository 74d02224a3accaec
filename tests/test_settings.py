from __future__ import annotations

from pathlib import Path

import pytest

from agentrag.errors import ConfigError
from agentrag.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AGENTRAG_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentrag.toml"
    path.write_text(text)
    return path


def test_defaults_point_at_the_local_server() -> None:
    s = Settings.load(config=None)
    assert s.generator.model == "hosted_vllm/qwen2.5-coder-1.5b"
    assert s.generator.api_base == ["http://127.0.0.1:8400/v1"]
    # The reranker follows the generator unless told otherwise.
    assert s.reranker.model == s.generator.model
    assert s.reranker.api_base == s.generator.api_base
    assert s.data_dir == Path(".agentrag")


def test_changing_the_server_port_moves_the_default_endpoints() -> None:
    s = Settings.load(config=None, server={"port": 9001, "served_name": "qwen"})
    assert s.generator.api_base == ["http://127.0.0.1:9001/v1"]
    assert s.generator.model == "hosted_vllm/qwen"


def test_file_overrides_defaults_and_env_overrides_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(
        tmp_path,
        """
data_dir = "/srv/kb"
[generator]
model = "hosted_vllm/from-file"
timeout_s = 30
[embedder]
threads = 2
""",
    )
    s = Settings.load(config=cfg)
    assert s.generator.model == "hosted_vllm/from-file"
    assert s.generator.timeout_s == 30
    assert s.embedder.threads == 2
    assert s.data_dir == Path("/srv/kb")

    monkeypatch.setenv("AGENTRAG_GENERATOR__MODEL", "hosted_vllm/from-env")
    monkeypatch.setenv("AGENTRAG_DATA_DIR", "/srv/env")
    s = Settings.load(config=cfg)
    assert s.generator.model == "hosted_vllm/from-env"
    assert s.generator.timeout_s == 30  # untouched file value survives a sibling env override
    assert s.data_dir == Path("/srv/env")

    # Explicit keyword overrides beat both.
    s = Settings.load(config=cfg, data_dir="/srv/kw")
    assert s.data_dir == Path("/srv/kw")


def test_config_found_through_env_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, "[server]\nport = 8500\n")
    monkeypatch.setenv("AGENTRAG_CONFIG", str(cfg))
    assert Settings.load().server.port == 8500
    monkeypatch.delenv("AGENTRAG_CONFIG")
    monkeypatch.chdir(tmp_path)
    assert Settings.load().server.port == 8500  # ./agentrag.toml


def test_replicas_from_env_as_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRAG_GENERATOR__API_BASE", "http://a:1/v1, http://b:2/v1/")
    s = Settings.load(config=None)
    assert s.generator.api_base == ["http://a:1/v1", "http://b:2/v1"]


def test_validation_errors_name_the_field_and_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRAG_GENERATOR__MAX_RETRIES", "many")
    monkeypatch.setenv("AGENTRAG_GENERATOR__API_BASE", "ftp://x")
    with pytest.raises(ConfigError) as info:
        Settings.load(config=None)
    text = str(info.value)
    assert info.value.code == "config.invalid"
    assert "generator.max_retries" in text and "AGENTRAG_GENERATOR__MAX_RETRIES" in text
    assert "'many'" in text
    assert "must start with http://" in text
    assert "2 invalid setting(s)" in text


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[generator]\nmodle = 'typo'\n")
    with pytest.raises(ConfigError, match=r"generator\.modle"):
        Settings.load(config=cfg)


def test_malformed_toml_and_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"valid TOML|cannot read"):
        Settings.load(config=write(tmp_path, "[generator\nmodel = 1"))
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(config=tmp_path / "nope.toml")
    monkeypatch.setenv("AGENTRAG_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="AGENTRAG_CONFIG"):
        Settings.load()


def test_settings_are_frozen() -> None:
    s = Settings.load(config=None)
    with pytest.raises(Exception, match="frozen"):
        s.generator.timeout_s = 1  # type: ignore[misc]
