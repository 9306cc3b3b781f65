"""Secrets never reach the report's recorded command line (unless redaction is turned off)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from greenmeter.hostinfo import redact_command
from greenmeter.redact import is_secret_name, redact_argv, redact_shell

GH = "ghp_" + "a1B2" * 9  # 36 characters after the prefix, as GitHub issues them
HF = "hf_" + "XyZ" * 11 + "q"  # 34
AWS = "AKIAIOSFODNN7EXAMPLE"
OPENAI = "sk-proj-" + "Ab9" * 10
SLACK = "xoxb-1234567890-abcdefghij"

#: The command line from the report that found secrets stored in clear.
ISSUE_ARGV = [
    "env", "HF_TOKEN=hf_x", "sh", "-c", "python train.py --token y",
    "--db=postgres://u:z@h/db", "--auth=Bearer_w", "-p", "v",
]  # fmt: skip
ISSUE_SECRETS = ["hf_x", "y'", "--token y", "u:z", "Bearer_w"]

CASES = [
    # environment assignments in command position
    (["env", "HF_TOKEN=abc", "python", "x.py"], ["env", "HF_TOKEN=***", "python", "x.py"]),
    (["FOO=bar", "cmd"], ["FOO=***", "cmd"]),
    (["env", "-i", "-u", "X", "K=v", "cmd", "a=b"],
     ["env", "-i", "-u", "X", "K=***", "cmd", "a=b"]),
    (["sudo", "-u", "bob", "K=v", "cmd"], ["sudo", "-u", "bob", "K=***", "cmd"]),
    (["docker", "run", "-e", "HF_TOKEN=abc", "--env", "A=b", "--env=C=d", "img"],
     ["docker", "run", "-e", "HF_TOKEN=***", "--env", "A=***", "--env=C=***", "img"]),
    # options whose name suggests a secret
    (["x", "--token", "abc", "--password=p", "--lr", "1"],
     ["x", "--token", "***", "--password=***", "--lr", "1"]),
    (["x", "--api-key", "k", "--apiKey=k", "--hf_token=t", "--secret", "s", "--passwd", "p"],
     ["x", "--api-key", "***", "--apiKey=***", "--hf_token=***", "--secret", "***", "--passwd",
      "***"]),
    (["x", "--auth=Bearer_w", "--bearer", "b", "--credentials", "c", "--db-pass", "p"],
     ["x", "--auth=***", "--bearer", "***", "--credentials", "***", "--db-pass", "***"]),
    (["x", "--aws-secret-access-key", "s", "--private-key=/k.pem", "--oauth", "o"],
     ["x", "--aws-secret-access-key", "***", "--private-key=***", "--oauth", "***"]),
    (["python", "t.py", "db.password=hunter2", "+api_key=zz", "lr=0.1", "model=resnet"],
     ["python", "t.py", "db.password=***", "+api_key=***", "lr=0.1", "model=resnet"]),
    # -p: the password only where the program documents it so
    (["sshpass", "-p", "pw", "ssh", "host"], ["sshpass", "-p", "***", "ssh", "host"]),
    (["mysql", "-ppw", "-u", "root", "db"], ["mysql", "-p***", "-u", "root", "db"]),
    (["mysql", "-p", "db"], ["mysql", "-p", "db"]),
    (["python", "-m", "http.server", "-p", "8080"], ["python", "-m", "http.server", "-p", "8080"]),
    # URL userinfo
    (["x", "--db=postgres://u:z@h/db"], ["x", "--db=postgres://***@h/db"]),
    (["git", "clone", f"https://{GH}@github.com/o/r"], ["git", "clone", "https://***@github.com/o/r"]),
    (["x", "mysql://u:p@ss@h:3306/d"], ["x", "mysql://***@h:3306/d"]),
    (["x", "https://h/p?email=a@b.org"], ["x", "https://h/p?email=a@b.org"]),
    # headers and bearer credentials
    (["curl", "-H", "Authorization: Bearer abc.def.ghi", "https://h"],
     ["curl", "-H", "Authorization: Bearer ***", "https://h"]),
    (["curl", "-H", "X-Api-Key: k123", "https://h"], ["curl", "-H", "X-Api-Key: ***", "https://h"]),
    # token shapes anywhere
    (["x", "--note", f"key {GH} here"], ["x", "--note", "key *** here"]),
    (["x", HF, AWS, OPENAI, SLACK], ["x", "***", "***", "***", "***"]),
    (["x", f"github_pat_{'A1_b' * 10}", f"glpat-{'x' * 20}"], ["x", "***", "***"]),
    (["python", "-c", f"import os; os.environ['T'] = '{HF}'"],
     ["python", "-c", "import os; os.environ['T'] = '***'"]),
    # shell strings, nested
    (["bash", "-lc", "export A=1 B=2; sudo -u x C=3 cmd --api-key k; (D=4 run)"],
     ["bash", "-lc", "export A=*** B=***; sudo -u x C=*** cmd --api-key ***; (D=*** run)"]),
    (["sh", "-c", "bash -c \"python x.py --token 'y z' --lr 3\""],
     ["sh", "-c", 'bash -c "python x.py --token *** --lr 3"']),
    (["sh", "-c", f"HF_TOKEN={HF} python x.py | tee log && echo {AWS}"],
     ["sh", "-c", "HF_TOKEN=*** python x.py | tee log && echo ***"]),
    (["env", "-S", "K=v python x.py --token t", "y"],
     ["env", "-S", "K=*** python x.py --token ***", "y"]),
    # left alone
    (["python", "t.py", "--tokenizer", "gpt2", "--max-tokens", "10", "--author", "me"],
     ["python", "t.py", "--tokenizer", "gpt2", "--max-tokens", "10", "--author", "me"]),
    (["x", "--no-auth", "cfg.yaml", "--keyword", "k", "hf_model_dir", "sk-learn"],
     ["x", "--no-auth", "cfg.yaml", "--keyword", "k", "hf_model_dir", "sk-learn"]),
    (["x", "--token", "--lr", "3"], ["x", "--token", "--lr", "3"]),
    (["sh", "-c", "echo 'unterminated"], ["sh", "-c", "echo 'unterminated"]),
]  # fmt: skip


@pytest.mark.parametrize("argv, expected", CASES)
def test_redaction_table(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected
    assert redact_argv(expected) == expected  # idempotent


def test_the_reported_command_line_is_redacted() -> None:
    out = redact_argv(ISSUE_ARGV)
    assert out == [
        "env", "HF_TOKEN=***", "sh", "-c", "python train.py --token ***",
        "--db=postgres://***@h/db", "--auth=***", "-p", "v",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "name, secret",
    [
        ("--token", True), ("--hf-token", True), ("--accessToken", True), ("apikey", True),
        ("--key", True), ("--pwd", True), ("--authorization", True), ("--client_secret", True),
        ("--tokenizer", False), ("--max-tokens", False), ("--author", False),
        ("--keys", False), ("--no-token", False), ("--lr", False), ("--passes", False),
    ],
)  # fmt: skip
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_odd_shell_strings_never_raise() -> None:
    for text in ["", "'", '"', "\\", "$(", "a=b", "((", "|||", "\n\n", "x" * 10_000, "é ü \x00"]:
        assert isinstance(redact_shell(text), str)
        assert isinstance(redact_argv(["sh", "-c", text]), list)


def test_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact_command(ISSUE_ARGV, enabled=False) == ISSUE_ARGV
    monkeypatch.setenv("GREENMETER_REDACT_COMMAND", "0")
    assert redact_command(ISSUE_ARGV) == ISSUE_ARGV
    monkeypatch.setenv("GREENMETER_REDACT_COMMAND", "1")
    assert redact_command(ISSUE_ARGV) != ISSUE_ARGV


def test_python_api_report_records_sys_argv_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from greenmeter import EnergyMeter
    from greenmeter.testing import PowerTrace
    from greenmeter.testing.sensors import TraceSensor

    monkeypatch.setattr(sys, "argv", ["train.py", "--hf-token", HF, "--lr", "3"])
    with EnergyMeter([TraceSensor({"t:cpu": PowerTrace.constant(1.0)})], carbon=False) as meter:
        pass
    report = meter.report()
    assert report.command == ["train.py", "--hf-token", "***", "--lr", "3"]
    assert HF not in report.to_json()


def test_greenmeter_run_records_the_issue_command_redacted(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENMETER_")}
    env["HOME"] = str(tmp_path)
    out = tmp_path / "run.json"
    argv = [*ISSUE_ARGV]
    argv[4] = "exit 0; python train.py --token y"
    done = subprocess.run(
        [sys.executable, "-m", "greenmeter", "run", "-q", "-o", str(out), "--", *argv],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert json.loads(text)["command"] == [
        "env", "HF_TOKEN=***", "sh", "-c", "exit 0; python train.py --token ***",
        "--db=postgres://***@h/db", "--auth=***", "-p", "v",
    ]  # fmt: skip
    for secret in ("hf_x", "--token y", "u:z", "Bearer_w"):
        assert secret not in text
