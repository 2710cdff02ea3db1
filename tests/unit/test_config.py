import pytest

from snapsync.schemas.config import load_settings, parse_database_url
from snapsync.schemas.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for k in ("SNAPSYNC_DATABASE_URL", "SNAPSYNC_KAFKA_BOOTSTRAP", "SNAPSYNC_CONFIG", "SNAPSYNC_HOME",
              "SNAPSYNC_TOPIC_PREFIX"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("SNAPSYNC_DATABASE_URL", "mysql://app:s%40cret@db.example:3307/practice")
    monkeypatch.setenv("SNAPSYNC_KAFKA_BOOTSTRAP", "k1:9092, k2:9092")
    s = load_settings()
    assert s.db.host == "db.example" and s.db.port == 3307 and s.db.password == "s@cret"
    assert s.kafka_bootstrap == "k1:9092,k2:9092"
    assert "s@cret" not in repr(s) and "s@cret" not in s.db.redacted()


def test_config_file_and_env_precedence(monkeypatch, tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('database_url = "mysql://root@h:1/a"\nkafka_bootstrap = "h:2"\ntopic_prefix = "clinic"\n')
    monkeypatch.setenv("SNAPSYNC_KAFKA_BOOTSTRAP", "env:3")
    s = load_settings(f)
    assert s.db.database == "a" and s.kafka_bootstrap == "env:3" and s.topic_prefix == "clinic"


def test_missing_keys_are_all_named_with_the_fix():
    with pytest.raises(ConfigError) as e:
        load_settings()
    msg = str(e.value)
    assert "SNAPSYNC_DATABASE_URL" in msg and "SNAPSYNC_KAFKA_BOOTSTRAP" in msg
    assert "is missing" in msg and "snapsync local up" in msg


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("postgres://h/db", "scheme must be mysql://"),
        ("mysql://h", "database name is missing"),
        ("mysql://h:notaport/db", "port"),
        ("mysql:///db", "host is missing"),
    ],
)
def test_bad_database_url(monkeypatch, url, fragment):
    monkeypatch.setenv("SNAPSYNC_DATABASE_URL", url)
    monkeypatch.setenv("SNAPSYNC_KAFKA_BOOTSTRAP", "h:1")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert fragment in str(e.value) and "SNAPSYNC_DATABASE_URL" in str(e.value)


def test_bad_bootstrap_and_prefix_reported_together(monkeypatch):
    monkeypatch.setenv("SNAPSYNC_DATABASE_URL", "mysql://h/db")
    monkeypatch.setenv("SNAPSYNC_KAFKA_BOOTSTRAP", "no-port")
    monkeypatch.setenv("SNAPSYNC_TOPIC_PREFIX", "bad prefix!")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert "SNAPSYNC_KAFKA_BOOTSTRAP" in str(e.value) and "SNAPSYNC_TOPIC_PREFIX" in str(e.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("database_url = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    unknown = tmp_path / "u.toml"
    unknown.write_text('database_ulr = "x"\n')
    with pytest.raises(ConfigError, match="unknown key.*database_ulr"):
        load_settings(unknown)


def test_parse_url_defaults():
    t = parse_database_url("mysql://h/db")
    assert (t.user, t.port, t.password) == ("root", 3306, "")
