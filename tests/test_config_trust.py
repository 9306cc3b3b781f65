"""Config files greenmeter may read, and settings a file may not make.

A planted ``greenmeter.toml`` (in a world-writable folder, or owned by another user)
points the live provider at a local server with ``live_token_env = "GITHUB_TOKEN"``:
the server must see no connection at all, through the Python API, ``greenmeter run``
and ``greenmeter doctor``.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenmeter.carbon import CarbonConfig, CarbonError, check_configuration, resolve
from greenmeter.carbon.dataset import world
from greenmeter.carbon.trust import project_dirs, untrusted_reason, user_config_dir

SECRET = "ghp_" + "Q" * 36
OTHER_UID = 4242
PLANTED_INTENSITY = 1234.0

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="giving a file to another user (os.chown) needs root",
)
posix_only = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX ownership rules")


class _Listener:
    """A local HTTP server that records every connection and request it gets."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[dict[str, str | None]] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.requests.append(
                    {"path": self.path, "token": self.headers.get("auth-token")}
                )
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request, client_address):  # type: ignore[no-untyped-def]
                listener.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    try:
        yield server
    finally:
        server.close()


def _plant(folder: Path, url: str) -> Path:
    path = folder / "greenmeter.toml"
    path.write_text(
        "[carbon]\n"
        f"intensity_g_per_kwh = {PLANTED_INTENSITY}\n"
        'live_provider = "electricitymaps"\n'
        'live_zone = "FR"\n'
        f'live_base_url = "{url}"\n'
        'live_token_env = "GITHUB_TOKEN"\n',
        encoding="utf-8",
    )
    return path


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENMETER_")}
    env.pop("XDG_CONFIG_HOME", None)
    env["HOME"] = str(home)
    env["GITHUB_TOKEN"] = SECRET
    env["ELECTRICITYMAPS_TOKEN"] = SECRET
    return env


def _world_writable_no_root(tmp_path: Path, url: str) -> tuple[Path, Path]:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    _plant(shared, url)
    cwd = shared / "work"
    cwd.mkdir()
    return shared, cwd


def _world_writable_project(tmp_path: Path, url: str) -> tuple[Path, Path]:
    shared = tmp_path / "sticky"
    shared.mkdir()
    (shared / ".git").mkdir()
    shared.chmod(0o1777)  # like /tmp: sticky, yet anyone may create files in it
    _plant(shared, url)
    return shared, shared


def _other_users_folder(tmp_path: Path, url: str) -> tuple[Path, Path]:
    proj = tmp_path / "theirs"
    proj.mkdir()
    (proj / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    _plant(proj, url)
    os.chown(proj, OTHER_UID, OTHER_UID)
    return proj, proj


def _other_users_file(tmp_path: Path, url: str) -> tuple[Path, Path]:
    proj = tmp_path / "mine"
    proj.mkdir()
    (proj / ".git").mkdir()
    os.chown(_plant(proj, url), OTHER_UID, OTHER_UID)
    return proj, proj


PLANTS = [
    pytest.param(_world_writable_no_root, id="world-writable-parent-no-project-root"),
    pytest.param(_world_writable_project, id="world-writable-project-folder", marks=posix_only),
    pytest.param(_other_users_folder, id="folder-of-another-user", marks=needs_root),
    pytest.param(_other_users_file, id="file-of-another-user", marks=needs_root),
]


@pytest.mark.filterwarnings("ignore::greenmeter.carbon.check.ConfigurationWarning")
@pytest.mark.parametrize("plant", PLANTS)
def test_planted_config_reaches_nobody_through_the_python_api(
    plant, tmp_path: Path, listener: _Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenmeter import EnergyMeter
    from greenmeter.report import Report
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    _, cwd = plant(tmp_path, listener.url)
    env = _clean_env(tmp_path)
    acct = resolve(None, cwd=cwd, env=env)
    assert acct.info.intensity.value_g_per_kwh == world().g_per_kwh  # the file was not read
    assert acct.info.time_series is None

    monkeypatch.chdir(cwd)
    for key in [k for k in os.environ if k.startswith("GREENMETER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    report_path = tmp_path / "api.json"
    with EnergyMeter([TraceSensor({"t:cpu": PowerTrace.constant(10.0)})], report_path=report_path):
        pass
    report = Report.load(report_path)
    assert report.carbon is not None
    assert report.carbon.intensity.value_g_per_kwh != PLANTED_INTENSITY
    assert listener.connections == 0 and listener.requests == []


@pytest.mark.parametrize("plant", PLANTS)
def test_planted_config_reaches_nobody_through_run_and_doctor(
    plant, tmp_path: Path, listener: _Listener
) -> None:
    _, cwd = plant(tmp_path, listener.url)
    env = _clean_env(tmp_path)
    out = tmp_path / "run.json"
    gm = [sys.executable, "-m", "greenmeter"]
    run = subprocess.run(
        [*gm, "run", "-q", "-o", str(out), "--", sys.executable, "-c", "pass"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["carbon"]["intensity"]["value_g_per_kwh"] != PLANTED_INTENSITY
    doctor = subprocess.run(
        [*gm, "doctor", "--json"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert doctor.returncode == 0, doctor.stderr
    diag = json.loads(doctor.stdout)
    assert diag["carbon"]["intensity"]["value_g_per_kwh"] != PLANTED_INTENSITY
    assert all("greenmeter.toml" not in s["source"] for s in diag["settings"])
    assert listener.connections == 0 and listener.requests == []
    for text in (run.stdout, run.stderr, doctor.stdout, doctor.stderr, out.read_text()):
        assert SECRET not in text


@pytest.mark.parametrize("plant", PLANTS[1:])
def test_a_skipped_file_is_named_with_the_reason(plant, tmp_path: Path) -> None:
    folder, cwd = plant(tmp_path, "https://example.invalid/v3")
    problems = check_configuration(None, cwd=cwd, env={"HOME": str(tmp_path)})
    assert [p.code for p in problems] == ["config.untrusted_file"]
    assert not problems[0].fatal
    assert str(folder / "greenmeter.toml") in problems[0].message
    assert "GREENMETER_CONFIG=" in problems[0].message
    acct = resolve(None, cwd=cwd, env={"HOME": str(tmp_path)})
    assert ("config.untrusted_file", problems[0].message) in acct.warnings


@posix_only
def test_trust_rules_one_by_one(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    path = proj / "greenmeter.toml"
    path.write_text('location = "FR"\n')
    assert untrusted_reason(path) is None
    path.chmod(0o666)
    assert untrusted_reason(path) == "it is writable by every user"
    path.chmod(0o644)
    proj.chmod(0o777)
    assert "holding it is writable by every user" in (untrusted_reason(path) or "")
    proj.chmod(0o755)
    inner = proj / "deeper"
    inner.mkdir()
    (inner / "greenmeter.toml").write_text("")
    proj.chmod(0o777)  # a folder above without the sticky bit: anyone could swap `deeper`
    reason = untrusted_reason(inner / "greenmeter.toml") or ""
    assert "above it is writable by every user" in reason
    proj.chmod(0o1777)  # with the sticky bit (like /tmp) only the owner can rename `deeper`
    assert untrusted_reason(inner / "greenmeter.toml") is None
    proj.chmod(0o755)
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    target = shared / "evil.toml"
    target.write_text("")
    link = proj / "linked.toml"
    link.symlink_to(target)  # a link in a good folder to a file in a world-writable one
    assert "writable by every user" in (untrusted_reason(link) or "")
    me = os.geteuid()
    if me != 0:  # seen by another unprivileged user, this user's file is not theirs
        assert untrusted_reason(path, uid=me + 1) == f"it is owned by another user (uid {me})"


@needs_root
def test_root_owned_files_are_trusted_and_other_users_are_not(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    path = proj / "greenmeter.toml"
    path.write_text("")
    # As another (unprivileged) user, a root-owned file in root-owned folders is fine...
    assert untrusted_reason(path, uid=OTHER_UID) is None
    # ...and a file of a third user is not, whoever reads it.
    os.chown(path, OTHER_UID + 1, OTHER_UID + 1)
    expected = f"it is owned by another user (uid {OTHER_UID + 1})"
    assert untrusted_reason(path, uid=OTHER_UID) == expected
    assert untrusted_reason(path) == expected


def test_search_stops_at_the_project_root_or_stays_in_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert project_dirs(tmp_path / "a" / "b") == [(tmp_path / "a" / "b").resolve()]
    (tmp_path / "a" / ".git").mkdir()
    assert project_dirs(tmp_path / "a" / "b") == [
        (tmp_path / "a" / "b").resolve(),
        (tmp_path / "a").resolve(),
    ]


def test_no_project_root_means_no_parent_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / "greenmeter.toml").write_text('location = "FR"\n')
    (tmp_path / "sub").mkdir()
    env = {"HOME": str(tmp_path / "nohome")}
    assert resolve(None, cwd=tmp_path / "sub", env=env).info.intensity.is_fallback
    # the working folder itself counts as the project when there is no root above
    assert resolve(None, cwd=tmp_path, env=env).info.intensity.location == "FRA"


def test_user_config_dir_is_read_after_the_project(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config" / "greenmeter").mkdir(parents=True)
    (home / ".config" / "greenmeter" / "greenmeter.toml").write_text('location = "NO"\npue = 1.4\n')
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    env = {"HOME": str(home)}
    acct = resolve(None, cwd=proj, env=env)
    assert acct.info.intensity.location == "NOR" and acct.pue == 1.4
    (proj / "pyproject.toml").write_text('[tool.greenmeter]\nlocation = "FR"\n')
    acct = resolve(None, cwd=proj, env=env)
    assert acct.info.intensity.location == "FRA" and acct.pue == 1.4  # project first
    xdg = tmp_path / "xdg"
    (xdg / "greenmeter").mkdir(parents=True)
    (xdg / "greenmeter" / "greenmeter.toml").write_text("pue = 1.9\n")
    assert resolve(None, cwd=proj, env={**env, "XDG_CONFIG_HOME": str(xdg)}).pue == 1.9
    assert user_config_dir({"XDG_CONFIG_HOME": "relative", "HOME": str(home)}) == (
        home / ".config" / "greenmeter"
    )
    assert user_config_dir({}) is None


def test_an_explicit_file_is_read_wherever_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    path = shared / "mine.toml"
    path.write_text('location = "FR"\n')
    proj = tmp_path / "p"
    (proj / ".git").mkdir(parents=True)
    acct = resolve(None, cwd=proj, env={"GREENMETER_CONFIG": str(path)})
    assert acct.info.intensity.location == "FRA"
    assert any("GREENMETER_CONFIG" in step for step in acct.info.resolution)


@pytest.mark.parametrize("key", ["live_base_url", "live_token_env", "config_file"])
def test_a_trusted_file_still_cannot_direct_the_request(
    key: str, tmp_path: Path, listener: _Listener
) -> None:
    (tmp_path / ".git").mkdir()
    value = {"live_base_url": listener.url, "live_token_env": "GITHUB_TOKEN"}.get(key, "x.toml")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.greenmeter]\nlocation = "FR"\nlive_provider = "electricitymaps"\n'
        f'{key} = "{value}"\n'
    )
    env = {"GITHUB_TOKEN": SECRET, "ELECTRICITYMAPS_TOKEN": SECRET}
    with pytest.raises(CarbonError, match=rf"'{key}' is not accepted in a config file"):
        resolve(None, cwd=tmp_path, env=env)
    problems = check_configuration(None, cwd=tmp_path, env=env)
    assert [(p.code, p.setting, p.fatal) for p in problems] == [
        ("config.refused_in_file", key, True)
    ]
    assert listener.connections == 0


def test_code_and_environment_may_direct_the_request(tmp_path: Path, listener: _Listener) -> None:
    (tmp_path / ".git").mkdir()
    env = {"GREENMETER_ELECTRICITYMAPS_URL": listener.url, "MY_TOKEN": "t0k"}
    cfg = CarbonConfig(location="FR", live_provider="electricitymaps", live_token_env="MY_TOKEN")
    resolve(cfg, cwd=tmp_path, env=env)
    assert listener.requests and listener.requests[0]["token"] == "t0k"


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://api.electricitymap.org/v3", True),
        ("http://127.0.0.1:8080/v3", True),
        ("http://127.8.9.10/v3", True),
        ("http://[::1]:8000/v3", True),
        ("http://localhost:8000/v3", True),
        ("http://api.electricitymap.org/v3", False),
        ("http://10.0.0.1/v3", False),
        ("http://127.0.0.1.attacker.example/v3", False),
        ("ftp://127.0.0.1/v3", False),
        ("https://user:pw@api.electricitymap.org/v3", False),
        ("https:///v3", False),
        ("https://host:99999/v3", False),
    ],
)
def test_https_only_except_loopback(url: str, ok: bool) -> None:
    if ok:
        assert CarbonConfig(live_base_url=url).live_base_url == url
    else:
        with pytest.raises(CarbonError, match="live_base_url"):
            CarbonConfig(live_base_url=url)


def test_plain_http_from_the_environment_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    env = {"GREENMETER_ELECTRICITYMAPS_URL": "http://api.electricitymap.org/v3"}
    problems = check_configuration(None, cwd=tmp_path, env=env)
    assert [p.code for p in problems] == ["config.invalid_value"]
    assert "must use https://" in problems[0].message
    assert "GREENMETER_ELECTRICITYMAPS_URL" in problems[0].message
