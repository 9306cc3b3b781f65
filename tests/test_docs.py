"""The documentation is tested: its examples run, its references match the code.

Conventions for code blocks in ``docs/**/*.md`` (also described in docs/contributing.md):

* A fenced ```` ```python ```` block runs, unless the line just before it is
  ``<!-- skip: reason -->``. The Python blocks of one page run in order, in one
  interpreter, sharing their names (like a notebook), in a fresh temporary folder.
* A ```` ```bash ```` block runs only when the line before it is ``<!-- run -->``; it runs
  with ``bash -euo pipefail`` in the same folder, in document order with the Python blocks.
* A block after ``<!-- file: NAME -->`` is not run: its text is written to ``NAME`` in
  that folder, so a later block can use it (``greenmeter run -- python train.py``).

Each page runs in its own process, with no ``GREENMETER_*`` variables from the caller's
environment, so examples see what a new user sees. Run this file as a script to run one
page by hand: ``python tests/test_docs.py docs/quickstart.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOOK = DOCS / "_hooks" / "reference.py"

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*$")
_DIRECTIVE = re.compile(r"^<!--\s*(run|skip|file)\s*(?::\s*(.*?))?\s*-->$")
#: Blocks on pages maintained outside these conventions that are not programs, by page and
#: the first line of the block, with the reason. Prefer a ``<!-- skip: reason -->`` line in
#: the page itself; then remove the entry here.
NOT_PROGRAMS: dict[str, dict[str, str]] = {}


@dataclass
class Block:
    """One fenced code block and what to do with it."""

    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    action: str  # "python", "bash", "file" or "skip"
    arg: str = ""  # the file name for "file", the reason for "skip"


def parse_blocks(path: Path) -> list[Block]:
    """Every top-level fenced block of a Markdown page, with its directive applied."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = str(path.relative_to(DOCS)) if path.is_relative_to(DOCS) else str(path)
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang = m.group(1)
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        code = "\n".join(lines[start + 1 : j]) + "\n"
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        directive = _DIRECTIVE.match(lines[k].strip()) if k >= 0 else None
        kind, arg = (directive.group(1), directive.group(2) or "") if directive else ("", "")
        first_line = lines[start + 1].strip() if start + 1 < j else ""
        reason = NOT_PROGRAMS.get(page, {}).get(first_line)
        if not directive and reason is not None:
            kind, arg = "skip", reason
        if kind == "file":
            action = "file"
        elif kind == "skip":
            action = "skip"
        elif lang == "python":
            action = "python"
        elif lang == "bash" and kind == "run":
            action = "bash"
        else:
            action = "skip"
        blocks.append(Block(page, start + 1, lang, code, action, arg))
        i = j + 1
    return blocks


def doc_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)


def runnable_pages() -> list[Path]:
    return [p for p in doc_pages() if any(b.action != "skip" for b in parse_blocks(p))]


def clean_env() -> dict[str, str]:
    """The caller's environment without greenmeter settings, with this Python first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENMETER_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    # The fake NVML library is compiled once per source; share the user's cache.
    env["GREENMETER_CACHE_DIR"] = os.environ.get(
        "GREENMETER_CACHE_DIR", str(Path.home() / ".cache" / "greenmeter")
    )
    return env


# -- the runner (executed in a child process, one per page) ------------------------------


def run_blocks(blocks: list[Block], workdir: Path) -> None:
    """Run a page's blocks in order in ``workdir``; raise on the first failure."""
    os.chdir(workdir)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for b in blocks:
        where = f"{b.page}:{b.line}"
        if b.action == "file":
            Path(b.arg).write_text(b.code, encoding="utf-8")
        elif b.action == "python":
            print(f"--- python block at {where}", flush=True)
            exec(compile(b.code, where, "exec"), namespace)  # the docs' own examples
        elif b.action == "bash":
            print(f"--- bash block at {where}", flush=True)
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", b.code], check=False)
            if done.returncode != 0:
                raise RuntimeError(f"bash block at {where} exited with {done.returncode}")


def _main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="run the code blocks of documentation pages")
    ap.add_argument("page", help="a Markdown page, or a JSON file of blocks (--json)")
    ap.add_argument("--json", action="store_true", help="the page argument is a JSON block list")
    ap.add_argument("--workdir", help="folder to run in (default: a new temporary folder)")
    args = ap.parse_args(argv)
    if args.json:
        blocks = [Block(**b) for b in json.loads(Path(args.page).read_text(encoding="utf-8"))]
    else:
        env = clean_env()
        os.environ.clear()
        os.environ.update(env)
        blocks = parse_blocks(Path(args.page).resolve())
    blocks = [b for b in blocks if b.action != "skip"]
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gm-docs-"))
    run_blocks(blocks, workdir)
    return 0


# -- tests -------------------------------------------------------------------------------


def test_block_parser_applies_directives(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\nx = 1\n```\n\n<!-- skip: needs a GPU -->\n```python\ngpu()\n```\n"
        "\n<!-- file: a.py -->\n```python\nprint(1)\n```\n\n```bash\nrm -rf /\n```\n\n"
        "<!-- run -->\n```bash\necho hi\n```\n",
        encoding="utf-8",
    )
    blocks = parse_blocks(page)
    assert [(b.line, b.action, b.arg) for b in blocks] == [
        (3, "python", ""),
        (8, "skip", "needs a GPU"),
        (13, "file", "a.py"),
        (17, "skip", ""),
        (22, "bash", ""),
    ]
    assert blocks[0].code == "x = 1\n"


def test_runner_reports_the_failing_block(tmp_path: Path) -> None:
    blocks = [
        Block("p.md", 1, "python", "value = 41\n", "python"),
        Block("p.md", 5, "python", "assert value == 42, 'docs example wrong'\n", "python"),
    ]
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([asdict(b) for b in blocks]), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, __file__, str(spec), "--json", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert done.returncode != 0
    assert 'File "p.md:5"' in done.stderr and "docs example wrong" in done.stderr


@pytest.mark.parametrize(
    "page", runnable_pages(), ids=lambda p: str(p.relative_to(DOCS)).replace("/", ".")
)
def test_examples_run(page: Path, tmp_path: Path) -> None:
    """Every runnable block of the page runs without error (their asserts included)."""
    blocks = [b for b in parse_blocks(page) if b.action != "skip"]
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([asdict(b) for b in blocks]), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, __file__, str(spec), "--json", "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=240,
        env=clean_env(),
    )
    assert done.returncode == 0, (
        f"a code block of docs/{page.relative_to(DOCS)} failed:\n"
        f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    )


def _hook():
    spec = importlib.util.spec_from_file_location("greenmeter_docs_hook", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _help_options(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", text))


def test_cli_page_lists_every_subcommand_and_option() -> None:
    """The generated CLI page shows what ``greenmeter <cmd> --help`` shows, for every cmd."""
    from greenmeter.cli import build_parser

    hook = _hook()
    page = hook.cli_markdown()
    assert hook.CLI_MARKER in (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    subs = hook.subcommands(parser)
    top = subprocess.run(
        ["greenmeter", "--help"], capture_output=True, text=True, timeout=60, env=clean_env()
    )
    assert top.returncode == 0
    for name in re.findall(r"^\s{4}(\w+)\s", top.stdout, flags=re.M):
        assert name in subs, f"`greenmeter --help` lists {name}, the parser does not"
    assert subs, "no subcommands found"
    for name, sub in subs.items():
        assert f"## `greenmeter {name}`" in page
        section = page.split(f"## `greenmeter {name}`", 1)[1].split("\n## ", 1)[0]
        options = _help_options(sub.format_help())
        missing = sorted(o for o in options if f"`{o}`" not in section)
        assert not missing, f"greenmeter {name}: options missing from the CLI page: {missing}"


def test_cli_page_matches_the_installed_command() -> None:
    """``greenmeter run --help`` (the real entry point) shows no option the page lacks."""
    hook = _hook()
    page = hook.cli_markdown()
    section = page.split("## `greenmeter run`", 1)[1].split("\n## ", 1)[0]
    done = subprocess.run(
        ["greenmeter", "run", "--help"], capture_output=True, text=True, timeout=60, env=clean_env()
    )
    assert done.returncode == 0
    missing = sorted(o for o in _help_options(done.stdout) if f"`{o}`" not in section)
    assert not missing


def test_schema_page_covers_every_object_and_field() -> None:
    hook = _hook()
    assert hook.SCHEMA_MARKER in (DOCS / "reference" / "schema.md").read_text(encoding="utf-8")
    schema = json.loads((DOCS / "schema" / "report.schema.json").read_text(encoding="utf-8"))
    page = hook.schema_markdown(schema)
    objects = {"Report": schema, **schema["$defs"]}
    for name, obj in objects.items():
        assert f"## `{name}` {{ #schema-{name.lower()} }}" in page
        section = page.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        for field in obj.get("properties", {}):
            assert f"| `{field}` |" in section, f"{name}.{field} missing from the schema page"
    for ref in set(re.findall(r"\(#schema-(\w+)\)", page)):
        assert f"{{ #schema-{ref} }}" in page, f"schema page links to a missing #{ref}"


def test_every_environment_variable_is_documented() -> None:
    """Each ``GREENMETER_*`` variable the package reads appears on the configuration page."""
    found: set[str] = set()
    for folder in (ROOT / "src" / "greenmeter", ROOT / "integrations"):
        for path in folder.rglob("*.py"):
            found |= set(re.findall(r"GREENMETER_[A-Z0-9_]*[A-Z0-9]", path.read_text("utf-8")))
    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(v for v in found if f"`{v}`" not in page)
    assert not missing, f"undocumented environment variables: {missing}"


def _prose(page: str) -> str:
    """A page's text with runs of whitespace made single spaces (line wraps ignored)."""
    return " ".join((DOCS / page).read_text(encoding="utf-8").split())


def test_methodology_constants_match_the_code() -> None:
    """Every constant the methodology quotes is the one the code uses."""
    from greenmeter.carbon.constants import EMBODIED_DEFAULTS, PUE_PRESETS
    from greenmeter.report import confidence
    from greenmeter.sensors import amd, amd_board, estimate, nvml, rapl
    from greenmeter.sensors import nvml_tracker as tracker

    text = _prose("methodology.md")
    facts = [
        (rapl.MIN_POLL_INTERVAL_S == 0.05, r"\max\left(0.05\,\text{s}"),
        (rapl.MAX_POLL_INTERVAL_S == 10.0, r"\min\left(10\,\text{s}"),
        (rapl.CONSTRAINT_HEADROOM == 2.0, "is twice the largest power constraint"),
        (
            rapl.DEFAULT_MAX_POWER_W == {"package": 800.0, "dram": 200.0, "psys": 1500.0},
            "800 W for a package, 200 W for DRAM and 1500 W for psys",
        ),
        (rapl.WRAP_SLACK_S == 0.01, "with 10 ms of slack"),
        (nvml.NVML_FI_DEV_POWER_INSTANT == 186, "`NVML_FI_DEV_POWER_INSTANT` (field 186)"),
        (nvml._STEP_PROBE_BUDGET_S == 0.12, "for up to 0.12 s"),
        (nvml._MIN_RESOLUTION_S == 0.01, "(at least 10 ms)"),
        (nvml._DEFAULT_COUNTER_RESOLUTION_S == 0.1, "or 0.1 s when no step was seen"),
        (nvml._SLOW_CALL_S == 0.010, "`nvml.slow_call` above 10 ms"),
        (amd_board._STEP_PROBE_BUDGET_S == 0.12, "watches it for up to 0.12 s"),
        (amd_board._STILL_COUNTER_MIN_W == 1.0, "draws at least 1 W"),
        (amd_board._CAP_HEADROOM == 2.0, "twice its power cap"),
        (amd_board._DEFAULT_MAX_POWER_W == 1500.0, "(1500 W when the cap is unknown)"),
        (amd_board._MAX_GUARD_S == 5.0, "at most every 5 s"),
        (amd._MAX_TRANSIENT == 10, "until 10 come in a row"),
        (confidence.HIGH_RATIO == 100.0, r"**high** when $r \ge 100$"),
        (confidence.MEDIUM_RATIO == 10.0, r"**medium** when $r \ge 10$"),
        (confidence.MATERIAL_SHARE == 0.05, "carrying at least 5% of its IT energy"),
        (estimate.RAM_W_PER_GB == 0.375, r"0.375\ \tfrac{\text{W}}{\text{GB}}"),
        (estimate.DEFAULT_W_PER_LOGICAL_CPU == 4.0, "4 W per logical CPU"),
        (len(estimate.cpu_power_table()["rows"]) == 4907, "(4,907 models"),
        (estimate.cpu_power_table()["source_version"] == "codecarbon 3.3.2", "codecarbon 3.3.2"),
        (PUE_PRESETS["uptime-2024"].value == 1.56, "`uptime-2024` (1.56)"),
        (set(PUE_PRESETS) == {"workstation", "uptime-2024"}, "`workstation` (1.0) and"),
        (EMBODIED_DEFAULTS["gpu"].manufacturing_kgco2e == 150.0, "150 kgCO2e per data-centre GPU"),
        (EMBODIED_DEFAULTS["server"].manufacturing_kgco2e == 2500.0, "2500 kgCO2e for the rest"),
        (EMBODIED_DEFAULTS["gpu"].lifetime_h == 6 * 365 * 24.0, "both over 6 years"),
        (tracker.ACTIVE_POWER_PERIOD_S == 0.05, "every 50 ms while boundaries come"),
        (tracker.IDLE_POWER_PERIOD_S == 0.1, "and every 100 ms between them"),
        (tracker.STEADY_POWER_PERIOD_S == 0.4, "up to every 400 ms"),
        (tracker._STEADY_SHARE == 0.05 and tracker._STEADY_W == 1.0, "within 5 % or 1 W"),
        (tracker._SLOW_POWER_CALL_S == 0.001, "A call held up past 1 ms is made again"),
        (tracker.ACTIVE_HOLD_S == 1.0, "(one in the last second, or someone waiting"),
        (tracker._PRE_READ_EVERY == 4, "one update in four (every update while"),
        (tracker._LOCATED_HW_S == 0.001, "known only within more than 1 ms"),
        (tracker.IDLE_READ_PERIOD_S == 4.0, "it reads about once every 4 s"),
        (nvml._STEP_PROBE_MAX_ERROR == 0.05, "when that is known within 5 %"),
    ]
    for holds, phrase in facts:
        assert phrase in text, f"methodology.md no longer says {phrase!r}"
        assert holds, f"the code changed: methodology.md says {phrase!r}; update the page"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site builds with warnings as errors (broken links and references fail)."""
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert (tmp_path / "reference" / "cli" / "index.html").is_file()
    cli_html = (tmp_path / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "--checkpoint-interval" in cli_html  # the generated part made it into the site
    shutil.rmtree(tmp_path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
