"""The deployment files themselves (no services needed): they run in both passes."""

import os
import re
import stat
import subprocess

from tests.deploy.topology import ROOT

SYSTEMD = ROOT / "deploy" / "systemd"


def test_every_periodic_command_of_the_readme_has_a_timer():
    """The README's Administration section lists the periodic jobs; each one has a unit and a
    timer that starts it."""
    readme = (ROOT / "README.md").read_text()
    periodic = readme[readme.index("Periodic jobs") :]
    periodic = periodic[: periodic.index("```\n\n")]
    commands = set(re.findall(r"manage\.py (\w+)", periodic))
    units = {}
    for name in sorted(path.name for path in SYSTEMD.glob("messenger-*.service")):
        service = (SYSTEMD / name).read_text()
        (command,) = re.findall(r"^ExecStart=.*manage\.py (\w+)", service, re.MULTILINE)
        units[command] = name
        timer = (SYSTEMD / name.replace(".service", ".timer")).read_text()
        assert "OnCalendar=" in timer
    assert set(units) == commands


def deploy_sh(*step: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "deploy" / "deploy.sh"), *step],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_env_file_gets_fresh_distinct_secrets_and_is_never_overwritten(tmp_path):
    env_file = tmp_path / "messenger.env"
    env = {"SERVER_NAME": "chat.example.org", "ENV_FILE": str(env_file), "SERVICE_USER": "nobody-such-group"}
    assert deploy_sh("env-file", env=env).returncode == 0
    settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and line[0] != "#")
    secrets = [settings["SECRET_KEY"], settings["JWT_SIGNING_KEY"], settings["PASSWORD_PEPPER"]]
    assert len(set(secrets)) == 3
    assert all(len(secret) >= 48 for secret in secrets)
    assert settings["DEBUG"] == "false"
    assert settings["ALLOWED_HOSTS"] == "chat.example.org"
    assert settings["TRUSTED_PROXIES"] == "127.0.0.1,::1"
    assert settings["DATABASE_URL"].startswith("mysql://messenger:")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640

    before = env_file.read_text()
    again = deploy_sh("env-file", env=env)
    assert again.returncode != 0
    assert "not overwritten" in again.stderr
    assert env_file.read_text() == before


def test_daphne_never_believes_the_left_most_forwarded_address():
    """daphne's --proxy-headers takes the client from the left-most X-Forwarded-For entry."""
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", (SYSTEMD / "messenger@.service").read_text(), re.MULTILINE)
    assert "daphne" in exec_start
    assert "--proxy-headers" not in exec_start
