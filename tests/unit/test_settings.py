"""Settings: defaults, environment variables, the TOML file, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoints.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def _empty_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run every test where no ./hounsfield.toml exists unless the test writes one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_run_on_the_embedded_default_in_var(tmp_path: Path) -> None:
    settings = Settings.from_env({})

    assert settings.environment == "development"
    assert settings.data_dir == tmp_path / "var"
    assert settings.data_dir.is_absolute()
    assert settings.database_url is None
    assert settings.storage_url is None
    assert settings.broker_url is None
    assert settings.models_dir is None
    assert settings.secret_key is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_upload_bytes == 500_000_000
    assert settings.access_token_ttl_s == 1800
    assert settings.blobs_dir == tmp_path / "var" / "blobs"


def test_environment_variables_are_read_and_converted(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "HOUNSFIELD_ENVIRONMENT": "production",
            "HOUNSFIELD_DATA_DIR": str(tmp_path / "data"),
            "HOUNSFIELD_DATABASE_URL": "postgresql://app:pw@db.example:5432/hounsfield",
            "HOUNSFIELD_STORAGE_URL": "s3://scans?region=eu-west-1",
            "HOUNSFIELD_BROKER_URL": "redis://queue:6379/0",
            "HOUNSFIELD_PORT": "9000",
            "HOUNSFIELD_MAX_UPLOAD_BYTES": "1024",
            "HOUNSFIELD_DB_POOL_MAX_SIZE": "20",
            "HOUNSFIELD_LOG_LEVEL": "debug",
            "HOUNSFIELD_PUBLIC_BASE_URL": "https://pacs.example",
        }
    )

    assert settings.environment == "production"
    assert settings.data_dir == tmp_path / "data"
    assert settings.database_url == "postgresql://app:pw@db.example:5432/hounsfield"
    assert settings.storage_url == "s3://scans?region=eu-west-1"
    assert settings.broker_url == "redis://queue:6379/0"
    assert settings.port == 9000
    assert settings.max_upload_bytes == 1024
    assert settings.db_pool_max_size == 20
    assert settings.log_level == "debug"
    assert settings.public_base_url == "https://pacs.example"


def test_variables_without_the_prefix_are_ignored() -> None:
    assert Settings.from_env({"PORT": "1234", "DATABASE_URL": "mysql://x"}).port == 8000


def test_an_empty_variable_means_the_embedded_default() -> None:
    settings = Settings.from_env({"HOUNSFIELD_DATABASE_URL": "", "HOUNSFIELD_MODELS_DIR": ""})

    assert settings.database_url is None
    assert settings.models_dir is None


def test_the_toml_file_named_by_hounsfield_config_is_read(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "site.toml", 'port = 8100\nlog_level = "warning"\n')

    settings = Settings.from_env({"HOUNSFIELD_CONFIG": str(config)})

    assert (settings.port, settings.log_level) == (8100, "warning")


def test_hounsfield_toml_in_the_working_directory_is_read_when_present(tmp_path: Path) -> None:
    write_toml(tmp_path / "hounsfield.toml", 'environment = "production"\n')

    assert Settings.from_env({}).environment == "production"


def test_a_hounsfield_table_in_the_toml_file_is_accepted(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "site.toml", "[hounsfield]\nport = 8200\n")

    assert Settings.from_env({}, config_file=config).port == 8200


def test_environment_variables_override_the_toml_file(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "site.toml", 'port = 8100\nhost = "0.0.0.0"\n')

    settings = Settings.from_env({"HOUNSFIELD_PORT": "8300"}, config_file=config)

    assert settings.port == 8300
    assert settings.host == "0.0.0.0"


def test_an_explicit_config_file_wins_over_hounsfield_config(tmp_path: Path) -> None:
    named = write_toml(tmp_path / "named.toml", "port = 8100\n")
    explicit = write_toml(tmp_path / "explicit.toml", "port = 8400\n")

    settings = Settings.from_env({"HOUNSFIELD_CONFIG": str(named)}, config_file=explicit)

    assert settings.port == 8400


def test_log_format_auto_is_console_in_development_and_json_in_production() -> None:
    assert Settings.from_env({}).effective_log_format == "console"
    production = Settings.from_env({"HOUNSFIELD_ENVIRONMENT": "production"})
    assert production.effective_log_format == "json"
    forced = Settings.from_env(
        {"HOUNSFIELD_ENVIRONMENT": "production", "HOUNSFIELD_LOG_FORMAT": "console"}
    )
    assert forced.effective_log_format == "console"


def test_repr_hides_the_secret_key_and_database_password() -> None:
    settings = Settings.from_env(
        {
            "HOUNSFIELD_SECRET_KEY": "s" * 40,
            "HOUNSFIELD_DATABASE_URL": "postgresql://app:hunter2@db/hounsfield",
        }
    )

    text = repr(settings)

    assert "s" * 40 not in text
    assert "hunter2" not in text
    assert "postgresql://app:***@db/hounsfield" in text


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HOUNSFIELD_PORT", "eighty", "an integer from 1 to 65535"),
        ("HOUNSFIELD_PORT", "0", "an integer from 1 to 65535"),
        ("HOUNSFIELD_PORT", "70000", "an integer from 1 to 65535"),
        ("HOUNSFIELD_ENVIRONMENT", "staging", "'development' or 'production'"),
        ("HOUNSFIELD_DATABASE_URL", "mysql://db/hounsfield", "a postgresql:// URL"),
        ("HOUNSFIELD_DATABASE_URL", "postgresql://db:99999/x", "a postgresql:// URL"),
        ("HOUNSFIELD_DATABASE_URL", "not a url", "a postgresql:// URL"),
        ("HOUNSFIELD_STORAGE_URL", "ftp://files.example/scans", "s3://bucket"),
        ("HOUNSFIELD_STORAGE_URL", "s3://", "s3://bucket"),
        ("HOUNSFIELD_BROKER_URL", "kafka://broker:9092", "a redis:// or amqp:// URL"),
        ("HOUNSFIELD_LOG_LEVEL", "verbose", "one of debug, info"),
        ("HOUNSFIELD_LOG_FORMAT", "xml", "one of auto, console, json"),
        ("HOUNSFIELD_MAX_UPLOAD_BYTES", "-1", "a positive integer (bytes)"),
        ("HOUNSFIELD_DB_POOL_MIN_SIZE", "0", "a positive integer"),
        ("HOUNSFIELD_DB_POOL_MAX_SIZE", "0", "at least db_pool_min_size"),
        ("HOUNSFIELD_ACCESS_TOKEN_TTL_S", "soon", "a positive integer (seconds)"),
        ("HOUNSFIELD_SECRET_KEY", "short", "at least 32 characters"),
        ("HOUNSFIELD_PUBLIC_BASE_URL", "pacs.example", "an http:// or https:// URL"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_what_is_expected(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})

    message = str(caught.value)
    assert message.startswith(f"{variable} must be ")
    assert expected in message
    assert "\n" not in message


def test_a_pool_smaller_than_its_minimum_is_refused() -> None:
    with pytest.raises(SettingsError, match="HOUNSFIELD_DB_POOL_MAX_SIZE"):
        Settings.from_env({"HOUNSFIELD_DB_POOL_MIN_SIZE": "5", "HOUNSFIELD_DB_POOL_MAX_SIZE": "2"})


def test_a_rejected_secret_key_is_not_repeated_in_the_message() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"HOUNSFIELD_SECRET_KEY": "tooshort"})

    assert "tooshort" not in str(caught.value)


def test_a_rejected_database_url_does_not_show_its_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"HOUNSFIELD_DATABASE_URL": "mysql://app:hunter2@db/x"})

    assert "hunter2" not in str(caught.value)


def test_a_bad_value_in_the_toml_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "site.toml", 'port = "http"\n')

    with pytest.raises(SettingsError) as caught:
        Settings.from_env({}, config_file=config)

    assert str(caught.value).startswith(f"port in {config} must be an integer")


def test_an_unknown_key_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "site.toml", "prot = 8000\n")

    with pytest.raises(SettingsError, match=r"prot in .* unknown setting"):
        Settings.from_env({}, config_file=config)


def test_a_malformed_toml_file_is_refused(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "site.toml", "port = = 1\n")

    with pytest.raises(SettingsError, match="is not a readable TOML file"):
        Settings.from_env({}, config_file=config)


def test_hounsfield_config_naming_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="HOUNSFIELD_CONFIG must name an existing TOML file"):
        Settings.from_env({"HOUNSFIELD_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/blobs",
        "/srv/blobs",
        "relative/blobs",
        "s3://bucket/prefix?region=x",
        "memory://",
    ],
)
def test_every_storage_form_the_adapters_accept_passes(url: str) -> None:
    assert Settings.from_env({"HOUNSFIELD_STORAGE_URL": url}).storage_url == url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://db.example/hounsfield",
        "postgres://user:pw@db.example:6432/hounsfield?sslmode=require",
        "postgresql://postgres@/hounsfield?host=/run/postgresql&port=5432",
    ],
)
def test_postgresql_urls_in_their_usual_forms_pass(url: str) -> None:
    assert Settings.from_env({"HOUNSFIELD_DATABASE_URL": url}).database_url == url
