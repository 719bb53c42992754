from pathlib import Path

import pytest
from pydantic import ValidationError

from tandem.access_and_limits import exposed_without_keys
from tandem.settings import Settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TANDEM_PORT", "9123")
    monkeypatch.setenv("TANDEM_DEVICE", "cuda")
    monkeypatch.setenv("TANDEM_LLM_MODEL", "google/gemma-2b")
    monkeypatch.setenv("TANDEM_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.internal:5432/tandem")
    s = Settings(_env_file=None)
    assert (s.port, s.device) == (9123, "cuda")
    assert s.llm_path == "google/gemma-2b" and s.llm_name == "gemma-2b"
    assert s.database_url == "postgresql://u:p@db.internal:5432/tandem"
    assert s.pgdata_dir == tmp_path / "pgdata"


def test_defaults_point_at_local_assets_and_embedded_db(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("TANDEM_DATABASE_URL", raising=False)
    s = Settings(_env_file=None)
    assert s.database_url is None
    assert s.var_dir.is_absolute()
    assert s.llm_path == str(s.models_dir / "smollm2-135m-instruct")
    assert s.bert_path.endswith("bert-small") and s.bart_path.endswith("bart-small")


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("TANDEM_LLM_REPLICAS=3\n")
    assert Settings(_env_file=env).llm_replicas == 3


@pytest.mark.parametrize("name,value", [("TANDEM_DEVICE", "tpu"), ("TANDEM_PORT", "0"), ("TANDEM_LLM_REPLICAS", "0")])
def test_bad_values_are_rejected_with_the_field_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings(_env_file=None)
    assert name.removeprefix("TANDEM_").lower() in str(err.value)


@pytest.mark.parametrize(("auth", "host", "refused"), [
    ("off", "0.0.0.0", True), ("off", "10.1.2.3", True), ("off", "tandem.example.com", True), ("off", "::", True),
    ("off", "127.0.0.1", False), ("off", "::1", False), ("off", "localhost", False), ("off", None, False),
    ("keys", "0.0.0.0", False),
])
def test_no_keys_only_on_loopback(auth: str, host: str | None, refused: bool) -> None:
    reason = exposed_without_keys(auth, host)
    assert (reason is not None) == refused
    if refused:
        assert f"TANDEM_AUTH=off on {host}" in reason and "127.0.0.1" in reason
