"""Secrets out of recorded command lines: :func:`redact_argv` and :func:`redact_text`.

A report records the command that started the run. Before it is stored, these values are
replaced by ``***``:

* environment assignments in command position: ``FOO=bar cmd``, ``env HF_TOKEN=x cmd``,
  ``sudo K=v cmd``, ``export K=v`` (in shell strings), and ``-e K=v`` / ``--env K=v``
  (as ``docker run`` takes them);
* values of options whose name suggests a secret (a word of the name is or ends in
  ``token``, ``key``, ``secret``, ``password``, ``passwd``, ``pwd``, ``pass``, ``auth``,
  ``bearer`` or ``credential(s)``; ``--opt=value``, ``--opt value`` and ``name=value``
  overrides such as Hydra's ``db.password=x``);
* ``-p`` only for programs where it is documented as the password (``sshpass -p pw``,
  ``mysql -ppw``): elsewhere ``-p`` is a port, a count or a path far more often;
* the userinfo of URLs (``postgres://u:z@h/db`` becomes ``postgres://***@h/db``);
* ``Authorization:``-style header values and ``Bearer`` credentials;
* known token shapes anywhere (GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``,
  ``github_pat_``, Hugging Face ``hf_``, ``sk-`` API keys, Slack ``xox?-``, AWS access key
  ids ``AKIA...``/``ASIA...``, GitLab ``glpat-``, Google ``AIza...``, PyPI, npm, JWTs).

Shell strings (the argument of ``sh -c``, ``bash -lc``, ``env -S``) are split into shell
words and redacted with the same rules, recursively. Everything here is a pure function
of its input; it never raises on odd input.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence

__all__ = ["MASK", "is_secret_name", "redact_argv", "redact_shell", "redact_text"]

MASK = "***"

_SECRET_PART = re.compile(
    r"(?:.*(?:token|secrets?|key|passw(?:or)?d|pwd|credentials?|bearer|apikey)"
    r"|pass|auth|oauth|authn|authz|authorization|authentication|.*auth)"
)
_NEGATED = re.compile(r"(?:no|disable|without)[-_]")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)
_OVERRIDE = re.compile(r"([+~]{0,2}[A-Za-z_][\w.\-/]*)=(.+)", re.S)
_OPTION_EQ = re.compile(r"(-{1,2}[A-Za-z][\w.\-]*)=(.+)", re.S)
_OPTION = re.compile(r"-{1,2}[A-Za-z][\w.\-]*")

_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})
#: Programs whose ``-p`` is the password: (takes a separate value, takes an attached one).
_PASSWORD_P = {"sshpass": (True, True), "mysql": (False, True), "mysqldump": (False, True),
               "mariadb": (False, True), "mysqladmin": (False, True)}  # fmt: skip
#: Words before the program: assignments may follow them (options skipped).
_WRAPPERS = frozenset(
    {"env", "sudo", "doas", "nohup", "exec", "command", "time", "nice", "then", "else",
     "elif", "do", "if", "while", "until", "!", "{"}
)  # fmt: skip
#: Wrapper options that take a separate value.
_WRAPPER_VALUE_OPTS = frozenset(
    {"-u", "--unset", "-C", "--chdir", "-g", "--group", "--user", "-h", "--host", "-p",
     "--prompt", "-r", "--role", "-t", "--type", "-U", "--other-user", "-D", "-T", "-n",
     "--adjustment"}
)  # fmt: skip
_ASSIGN_BUILTINS = frozenset({"export", "declare", "local", "readonly", "typeset"})

_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|sk-[A-Za-z0-9_\-]{16,}"
    r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|xapp-[A-Za-z0-9\-]{10,}"
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|npm_[A-Za-z0-9]{36}"
    r"|pypi-[A-Za-z0-9_\-]{50,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"
    r")"
)
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s'\"]*)@")
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|x-auth-token|auth-token|"
    r"private-token|cookie)(\s*:\s*)(?:(bearer|basic|token|bot|digest)\s+)?([^\s'\"]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=\-]{6,})")
_TEXT_OPTION = re.compile(
    r"(?<![\w\-])(-{1,2}[A-Za-z][\w.\-]*)(=|[ \t]+)(\"[^\"]*\"|'[^']*'|[^\s'\";&|()<>`]+)"
)


def is_secret_name(name: str) -> bool:
    """True when an option or variable name suggests a secret (``--hf-token``, ``apiKey``).

    The name is split into words at ``-``, ``_``, ``.`` and similar; it is secret when
    one word is ``pass``/``auth``-like or ends in token, key, secret, password, passwd,
    pwd, credential or bearer. ``--tokenizer``, ``--max-tokens`` and ``--author`` are not.
    """
    low = name.lstrip("-+~").lower()
    if not low or _NEGATED.match(low):
        return False
    return any(_SECRET_PART.fullmatch(part) for part in re.split(r"[^a-z0-9]+", low) if part)


def redact_text(text: str) -> str:
    """``text`` with URL userinfo, header credentials, secret options and token shapes masked."""
    if not text:
        return text
    out = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    out = _HEADER.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) + ' ' if m.group(3) else ''}{MASK}", out
    )
    out = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    out = _TEXT_OPTION.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{MASK}" if is_secret_name(m.group(1)) else m.group(0),
        out,
    )
    return _TOKEN_SHAPES.sub(MASK, out)


def _mask_assignment(word: str) -> str:
    m = _ASSIGN.fullmatch(word)
    if m is None or not m.group(2):
        return word
    return f"{m.group(1)}={MASK}"


def _redact_words(words: Sequence[str]) -> list[str]:
    """One simple command (program and arguments, already unquoted), redacted."""
    out = list(words)
    n = len(words)
    i = 0
    prog = ""
    while i < n:  # assignments and wrappers before the program
        word = words[i]
        if _ASSIGN.fullmatch(word):
            out[i] = _mask_assignment(word)
            i += 1
            continue
        base = os.path.basename(word)
        if base in _WRAPPERS:
            i += 1
            while i < n and words[i].startswith("-") and words[i] != "-":
                opt = words[i]
                if opt in ("-S", "--split-string") and i + 1 < n:
                    out[i + 1] = redact_shell(words[i + 1])
                    i += 2
                elif opt.startswith("--split-string="):
                    out[i] = "--split-string=" + redact_shell(opt.split("=", 1)[1])
                    i += 1
                elif opt in _WRAPPER_VALUE_OPTS:
                    i += 2
                else:
                    i += 1
            continue
        prog = base
        i += 1
        break
    assign_all = prog in _ASSIGN_BUILTINS
    password_p = _PASSWORD_P.get(prog)
    while i < n:
        word = words[i]
        nxt = words[i + 1] if i + 1 < n else None
        if assign_all and _ASSIGN.fullmatch(word):
            out[i] = _mask_assignment(word)
        elif prog in _SHELLS and re.fullmatch(r"-[A-Za-z]*c[A-Za-z]*", word) and nxt is not None:
            out[i + 1] = redact_shell(nxt)
            i += 2
            continue
        elif word in ("-e", "--env") and nxt is not None and _ASSIGN.fullmatch(nxt):
            out[i + 1] = _mask_assignment(nxt)
            i += 2
            continue
        elif word.startswith("--env=") and _ASSIGN.fullmatch(word[6:]):
            out[i] = "--env=" + _mask_assignment(word[6:])
        elif password_p is not None and word == "-p" and password_p[0] and nxt is not None:
            out[i + 1] = MASK
            i += 2
            continue
        elif password_p is not None and password_p[1] and word.startswith("-p") and len(word) > 2:
            out[i] = "-p" + MASK
        elif (m := _OPTION_EQ.fullmatch(word)) is not None:
            if is_secret_name(m.group(1)):
                out[i] = f"{m.group(1)}={MASK}"
        elif _OPTION.fullmatch(word) and is_secret_name(word):
            if nxt is not None and not nxt.startswith("-"):
                out[i + 1] = MASK
                i += 2
                continue
        elif (m := _OVERRIDE.fullmatch(word)) is not None and is_secret_name(m.group(1)):
            out[i] = f"{m.group(1)}={MASK}"
        i += 1
    return [redact_text(w) for w in out]


# -- shell strings ---------------------------------------------------------------------

_SHELL_TOKEN = re.compile(
    r"""(?P<space>[ \t\r]+|\\\n)
      | (?P<op>&&|\|\||;;|\$\(|[;&|()\n`])
      | (?P<word>(?:'[^']*'?|"(?:\\.|[^"\\])*"?|\\.|[^\s;&|()`'"\\])+)
      | (?P<other>.)""",
    re.X | re.S,
)
_QUOTED = re.compile(r"""'([^']*)'?|"((?:\\.|[^"\\])*)"?|\\(.)|([^'"\\]+)""", re.S)
_SAFE_WORD = re.compile(r"[\w@%+=:,./*\-]+")


def _unquote(raw: str) -> str:
    parts = []
    for m in _QUOTED.finditer(raw):
        single, double, escaped, plain = m.groups()
        if single is not None:
            parts.append(single)
        elif double is not None:
            parts.append(re.sub(r'\\([\\"$`])', r"\1", double))
        elif escaped is not None:
            parts.append(escaped)
        else:
            parts.append(plain or "")
    return "".join(parts)


def _requote(new: str, raw: str) -> str:
    if _SAFE_WORD.fullmatch(new):
        return new
    if raw.startswith('"'):
        return '"' + re.sub(r'([\\"$`])', r"\\\1", new) + '"'
    return shlex.quote(new)


def redact_shell(script: str) -> str:
    """A shell command string with every simple command in it redacted (see module doc)."""
    try:
        pieces: list[str] = []
        command: list[tuple[int, str]] = []  # (index in pieces, raw word)

        def flush() -> None:
            if not command:
                return
            new = _redact_words([_unquote(raw) for _, raw in command])
            for (index, raw), word in zip(command, new, strict=True):
                if word != _unquote(raw):
                    pieces[index] = _requote(word, raw)
            command.clear()

        for m in _SHELL_TOKEN.finditer(script):
            kind = m.lastgroup
            if kind == "word":
                command.append((len(pieces), m.group()))
            elif kind == "op":
                flush()
            pieces.append(m.group())
        flush()
        return redact_text("".join(pieces))
    except Exception:  # never lose the record over an odd string: mask what is known
        return redact_text(script)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with secrets replaced by ``***`` (see the module docstring for the rules)."""
    try:
        return _redact_words([str(a) for a in argv])
    except Exception:
        return [redact_text(str(a)) for a in argv]
