"""Command line, configuration file and environment handling."""

import os
import re
import subprocess

import pytest

from conftest import WAIT, async_test, daemon_env, free_port, jobwire_bin, write_config


def run(args, env_extra=None):
    """Runs jobwire to completion (bounded); returns (exit code, stdout, stderr)."""
    env = dict(daemon_env(), **(env_extra or {}))
    try:
        p = subprocess.run([jobwire_bin()] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=WAIT)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"jobwire {args} still running after {WAIT}s (expected it to exit);"
                             f" stderr: {e.stderr!r}") from None
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    assert "AddressSanitizer" not in err and "runtime error:" not in err, err
    return p.returncode, out, err


def good_settings(tmp_path):
    return {"listen_address": "127.0.0.1", "listen_port": free_port(),
            "redis_host": "127.0.0.1", "redis_port": free_port(), "dev_auth": True,
            "web_root": str(tmp_path), "log_level": "info"}


def config_with_line3(tmp_path, line):
    """A config whose third line is `line` (line 1 a comment, line 2 a good setting)."""
    path = str(tmp_path / "bad.conf")
    with open(path, "w") as f:
        f.write(f"# test config\nlisten_address 127.0.0.1\n{line}\nlog_level info\n")
    return path


@pytest.mark.parametrize("line", [
    "no_such_key 1",
    "listen_port 70000",
    "listen_port 0",
    "listen_port eighty",
    "listen_port 80x",
    "dev_auth maybe",
    "log_level loud",
    "client_max_message_bytes 10",
    "reconnect_multiplier abc",
    "listen_port",
], ids=["unknown_key", "port_too_big", "port_zero", "port_word", "port_suffix", "bool_word",
        "log_level", "below_min", "double_word", "missing_value"])
def test_config_file_error_names_file_and_line(tmp_path, line):
    path = config_with_line3(tmp_path, line)
    rc, out, err = run(["--config", path])
    assert rc != 0, f"{line!r} was accepted"
    assert f"{path}:3" in err or f"{os.path.basename(path)}:3" in err, \
        f"{line!r}: stderr does not name {path}:3:\n{err}"


def test_config_cross_field_error(tmp_path):
    settings = dict(good_settings(tmp_path), reconnect_initial_ms=5000, reconnect_max_ms=100)
    path = write_config(str(tmp_path / "x.conf"), settings)
    rc, _, err = run(["--check-config", "--config", path])
    assert rc != 0 and "reconnect" in err, err


def test_config_comments_and_blank_lines(tmp_path):
    path = str(tmp_path / "c.conf")
    with open(path, "w") as f:
        f.write("# comment\n\n   \n  # indented comment\nlisten_port 8081\n"
                "log_level debug   \n")
    rc, out, err = run(["--check-config", "--config", path])
    assert rc == 0, err


def test_missing_config_file(tmp_path):
    rc, _, err = run(["--config", str(tmp_path / "nope.conf")])
    assert rc != 0 and "nope.conf" in err, err


def test_bad_environment_value(tmp_path):
    path = write_config(str(tmp_path / "g.conf"), good_settings(tmp_path))
    rc, _, err = run(["--check-config", "--config", path], {"JOBWIRE_LISTEN_PORT": "abc"})
    assert rc != 0 and "JOBWIRE_LISTEN_PORT" in err, err


def test_check_config_good_file(tmp_path):
    settings = dict(good_settings(tmp_path), redis_password="s3cr3t-pa55")
    path = write_config(str(tmp_path / "good.conf"), settings)
    rc, out, err = run(["--check-config", "--config", path])
    assert rc == 0, f"--check-config rejected a good file:\n{err}"
    assert "s3cr3t-pa55" not in out + err, "--check-config printed the Redis password"


def test_secret_from_url_not_logged(tmp_path):
    settings = good_settings(tmp_path)
    path = write_config(str(tmp_path / "good.conf"), settings)
    rc, out, err = run(["--check-config", "--config", path],
                       {"REDIS_URL": "redis://bob:hunter2-xyz@127.0.0.1:6390"})
    assert rc == 0, err
    assert "hunter2-xyz" not in out + err


def test_version():
    rc, out, err = run(["--version"])
    assert rc == 0, err
    assert re.search(r"\d+\.\d+\.\d+", out), f"--version printed {out!r} on stdout"


def test_help():
    rc, out, err = run(["--help"])
    assert rc == 0
    assert "--config" in out + err


def test_unknown_option():
    rc, _, err = run(["--no-such-option"])
    assert rc != 0 and err.strip()


@pytest.mark.jwnostart
@async_test
async def test_environment_overrides_file(jw, redis_server):
    """JOBWIRE_LISTEN_PORT and REDIS_URL beat the config file."""
    port = free_port()
    jw.extra_env = {"JOBWIRE_LISTEN_PORT": str(port),
                    "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}"}
    jw.settings["redis_port"] = free_port()  # nothing listens there
    write_config(jw.config, jw.settings)
    jw.port = port
    jw.start()  # waits for /readyz on the environment's port, i.e. Redis from REDIS_URL
    alice = await jw.client("alice")
    await alice.ping()


@pytest.mark.parametrize("what", ["bad key file", "missing key file", "web_root not a dir",
                                  "missing web_root", "missing redis CA"])
def test_check_config_loads_what_start_would(tmp_path, what):
    """--check-config fails where starting would: every file it names is loaded."""
    settings = good_settings(tmp_path)
    bad_pem = tmp_path / "bad.pem"
    bad_pem.write_text("not a key\n")
    settings.update({
        "bad key file": {"dev_auth": False, "jwt_public_keys": f"k1={bad_pem}"},
        "missing key file": {"dev_auth": False, "jwt_public_keys": str(tmp_path / "none.pem")},
        "web_root not a dir": {"web_root": str(bad_pem)},
        "missing web_root": {"web_root": str(tmp_path / "nowhere")},
        "missing redis CA": {"redis_tls": True, "redis_tls_ca_file": str(tmp_path / "ca.pem")},
    }[what])
    path = write_config(str(tmp_path / "jobwire.conf"), settings)
    code, out, err = run(["--check-config", "--config", path])
    assert code == 1 and "configuration ok" not in out, (code, out, err)
    named = {"bad key file": "bad.pem", "missing key file": "none.pem",
             "web_root not a dir": "web_root", "missing web_root": "nowhere",
             "missing redis CA": "ca.pem"}[what]
    assert named in err, err
