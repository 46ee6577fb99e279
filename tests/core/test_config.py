"""Configuration: embedded defaults, URL normalisation and the generated secret key."""

import json
import os
import subprocess
import sys
from pathlib import Path

from app import create_app
from config import TestingConfig, _database_url

ROOT = Path(__file__).resolve().parents[2]


def test_database_url_defaults_to_sqlite_and_prefers_psycopg3():
    assert _database_url(None).startswith("sqlite:///")
    assert _database_url(None).endswith("instance/huizhen.db")
    assert _database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert _database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert _database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_embedded_defaults_with_an_empty_environment():
    # A fresh interpreter with none of our variables set, so the defaults are what is read.
    code = ("import json, config; c = config.Config(); print(json.dumps({k: getattr(c, k) for k in "
            "('STORAGE_BACKEND', 'SOCKETIO_ASYNC_MODE', 'SOCKETIO_MESSAGE_QUEUE', 'HOST', 'PORT', "
            "'MAX_UPLOAD_MB', 'MAX_CONTENT_LENGTH', 'INSTANCE_CACHE_MB', 'RENDER_CACHE_MB', 'SECRET_KEY', "
            "'SQLALCHEMY_DATABASE_URI', 'UPLOAD_FOLDER', 'INSTANCE_PATH')}))")
    env = {"PATH": os.environ["PATH"]}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    cfg = json.loads(out)
    assert cfg["STORAGE_BACKEND"] == "local"
    assert cfg["SOCKETIO_ASYNC_MODE"] == "threading"
    assert cfg["SOCKETIO_MESSAGE_QUEUE"] is None
    assert cfg["HOST"] == "127.0.0.1"
    assert cfg["PORT"] == 5000
    assert cfg["MAX_CONTENT_LENGTH"] == 512 * 1024 * 1024
    assert (cfg["INSTANCE_CACHE_MB"], cfg["RENDER_CACHE_MB"]) == (256, 128)
    assert cfg["SECRET_KEY"] is None
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{ROOT / 'instance' / 'huizhen.db'}"
    assert cfg["UPLOAD_FOLDER"] == str(ROOT / "uploads")
    assert cfg["INSTANCE_PATH"] == str(ROOT / "instance")


def test_secret_key_is_generated_into_instance_and_kept(tmp_path, database_url):
    class NoSecret(TestingConfig):
        SECRET_KEY = None

    first = create_app(NoSecret, SQLALCHEMY_DATABASE_URI=database_url, INSTANCE_PATH=str(tmp_path))
    second = create_app(NoSecret, SQLALCHEMY_DATABASE_URI=database_url, INSTANCE_PATH=str(tmp_path))
    key_file = tmp_path / "secret_key"
    assert key_file.exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(first.config["SECRET_KEY"]) == 64
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]


def test_upload_limit_comes_from_max_upload_mb(database_url, tmp_path):
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=database_url, INSTANCE_PATH=str(tmp_path),
                     MAX_UPLOAD_MB=3)
    assert app.config["MAX_CONTENT_LENGTH"] == 3 * 1024 * 1024


def _run(args: list[str], tmp_path, **env) -> subprocess.CompletedProcess:
    """Run a command at the repo root with only PATH, a private database and the given variables."""
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", **env}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


_SHOW_CONFIG = ("import json, run; print(json.dumps({k: run.app.config[k] for k in "
                "('SESSION_COOKIE_SECURE', 'REMEMBER_COOKIE_SECURE', 'SECRET_KEY')}))")


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    done = _run([sys.executable, "-m", "flask", "--app", "run", "routes"], tmp_path, HUIZHEN_ENV="production")
    assert done.returncode != 0
    assert "SECRET_KEY" in done.stderr
    assert "HUIZHEN_ENV=production" in done.stderr


def test_production_settings_apply_when_huizhen_env_says_so(tmp_path):
    done = _run([sys.executable, "-c", _SHOW_CONFIG], tmp_path, HUIZHEN_ENV="production",
                SECRET_KEY="a-real-secret")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"SESSION_COOKIE_SECURE": True, "REMEMBER_COOKIE_SECURE": True,
                                       "SECRET_KEY": "a-real-secret"}
    # `flask --app run` builds the same app: a production command with a key works.
    done = _run([sys.executable, "-m", "flask", "--app", "run", "routes"], tmp_path, HUIZHEN_ENV="production",
                SECRET_KEY="a-real-secret")
    assert done.returncode == 0, done.stderr


def test_without_huizhen_env_the_default_config_is_used(tmp_path):
    done = _run([sys.executable, "-c", _SHOW_CONFIG], tmp_path, SECRET_KEY="dev")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["SESSION_COOKIE_SECURE"] is False


def test_image_cache_sizes_come_from_config(database_url, tmp_path):
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=database_url, INSTANCE_PATH=str(tmp_path),
                     INSTANCE_CACHE_MB=3, RENDER_CACHE_MB=2)
    assert app.extensions["instance_cache"].max_bytes == 3 * 1024 * 1024
    assert app.extensions["render_cache"].max_bytes == 2 * 1024 * 1024
