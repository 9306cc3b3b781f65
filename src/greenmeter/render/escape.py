"""One escaping function per output language, for every string a renderer did not write.

Run names, phase names, warning codes, hardware labels: anything in a report may come from
a user, a library or a hand-edited file, so every renderer treats every report string as
hostile and passes it through the function of its language here, and nowhere else:

* :func:`escape_md`: Markdown text (CommonMark, GitHub, Python-Markdown), safe in a table
  cell, a heading or at the start of a list item;
* :func:`escape_latex`: LaTeX running text and table cells (pdflatex, OT1 or T1 fonts);
* :func:`escape_html`: HTML and XML (SVG) text and attribute values;
* :func:`csv_cell`: a CSV cell a spreadsheet will not run as a formula (:func:`csv_table`
  writes whole tables with it);
* :func:`yaml_string`: a YAML double-quoted scalar;
* :func:`plot_text`: a matplotlib label, drawn as it is (with ``parse_math=False``).

:func:`latex_number` and :func:`html_number` write the numbers of
:func:`greenmeter.render.numbers.sig` (``1.23e-05``) as powers of ten.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable, Iterable, Sequence

from greenmeter.render.numbers import EXPONENT

__all__ = [
    "csv_cell",
    "csv_table",
    "escape_html",
    "escape_latex",
    "escape_md",
    "html_number",
    "latex_number",
    "plot_text",
    "yaml_string",
]

# -- Markdown ------------------------------------------------------------------------------

#: Backslash-escaped wherever they are (CommonMark lets any ASCII punctuation be escaped).
_MD_SPECIAL = frozenset("\\`*_[]{}#|~$")
#: Written as entities: a backslash before them is not an escape in Python-Markdown.
_MD_ENTITY = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: What starts a list or a rule at the start of a line or a list item's text: ``-`` or
#: ``+`` before a space, the end or another ``-``; ``1.`` or ``1)`` before a space or the end.
_MD_MARKER = re.compile(r"^( ?)(\+(?= |$)|-(?=[ -]|$)|[0-9]{1,9}[.)](?= |$))")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EDGE_SPACES = re.compile(r"^ {2,}| {2,}$")


def escape_md(text: object) -> str:
    """``text`` as Markdown that renders as exactly that text, on one line.

    Emphasis, links, code, HTML, entities, math (``$``), strikethrough, attribute lists
    and table pipes are escaped; line breaks and other control characters become spaces,
    and a run of spaces at either end becomes one, so the text can neither end its line
    (no hard break) nor start a block (a heading, a list, a quote, a rule, indented code)
    where it begins a line or a list item.
    """
    flat = _EDGE_SPACES.sub(" ", _CONTROL.sub(" ", str(text)))
    out = []
    for ch in flat:
        if ch in _MD_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(_MD_ENTITY.get(ch, ch))
    escaped = "".join(out)
    found = _MD_MARKER.match(escaped)
    if found is None:
        return escaped
    space, marker = found.groups()
    if marker in "-+":
        guarded = f"{space}\\{marker}"
    else:
        guarded = f"{space}{marker[:-1]}\\{marker[-1]}"
    return guarded + escaped[found.end() :]


# -- LaTeX ---------------------------------------------------------------------------------

_LATEX = {
    "\\": r"$\backslash$",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\~{}",
    "^": r"\^{}",
    "<": r"$<$",
    ">": r"$>$",
    "|": r"$|$",
    '"': "''",
    # in braces: never the optional argument of \\, \item or \midrule before it
    "[": "{[}",
    "]": "{]}",
    "\u00d7": r"$\times$",
    "\u2013": "--",
    "\u2014": "---",
    "\u2018": "`",
    "\u2019": "'",
    "\u201c": "``",
    "\u201d": "''",
    "\u2026": r"\ldots{}",
    "\u00b5": r"$\mu$",
    "\u03bc": r"$\mu$",
    "\u00b0": r"$^\circ$",
    "\u00a0": "~",
    "\u2212": "-",
}
#: Latin-1 letters the default (OT1) font encoding of pdflatex cannot typeset.
_LATEX_T1_ONLY = frozenset("\u00d0\u00de\u00f0\u00fe")


def escape_latex(text: object) -> str:
    """``text`` safe in LaTeX running text and in a table cell.

    Special characters are escaped; brackets are braced (a cell starting with ``[``
    after ``\\\\`` or ``\\midrule`` would be read as their optional argument) and so is a
    leading ``*`` (``\\\\*``); characters a basic pdflatex cannot typeset (outside ASCII
    and the Latin-1 letters of the OT1 fonts, other than a few mapped symbols) become
    ``?``; control characters become spaces.
    """
    out = []
    for ch in str(text):
        mapped = _LATEX.get(ch)
        if mapped is not None:
            out.append(mapped)
        elif ch < " " or ch == "\x7f":
            out.append(" ")
        elif ch <= "~":
            out.append(ch)
        elif "\u00c0" <= ch <= "\u00ff" and ch.isalpha() and ch not in _LATEX_T1_ONLY:
            out.append(ch)
        else:
            out.append("?")
    escaped = "".join(out).replace("CO2e", r"CO\textsubscript{2}e")
    return "{}" + escaped if escaped.startswith("*") else escaped


def latex_number(text: str) -> str:
    """A number from :func:`~greenmeter.render.numbers.sig` as LaTeX (powers of ten)."""
    return _number(text, "--", lambda m, e: f"${m}\\times10^{{{e}}}$", str)


def _number(
    text: str, empty: str, power: Callable[[str, str], str], plain: Callable[[str], str]
) -> str:
    """``text`` written by ``power(mantissa, exponent)`` when it has an exponent."""
    if not text:
        return empty
    found = EXPONENT.match(text)
    if found is None:
        return plain(text)
    mantissa, sign, exp = found.groups()
    return power(mantissa, ("-" if sign == "-" else "") + exp)


# -- HTML and SVG --------------------------------------------------------------------------

#: Characters XML 1.0 forbids even as references (an .svg file must stay parseable).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape_html(text: object) -> str:
    """``text`` safe in HTML or XML text and in a quoted attribute value.

    ``& < > " '`` become references; characters XML forbids become U+FFFD.
    """
    return html.escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


def html_number(text: str) -> str:
    """A number from :func:`~greenmeter.render.numbers.sig` as HTML (powers of ten)."""
    return _number(
        text,
        "&ndash;",
        lambda m, e: f"{escape_html(m)}&times;10<sup>{escape_html(e)}</sup>",
        escape_html,
    )


# -- CSV -----------------------------------------------------------------------------------

#: What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text rather than evaluates.

    A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
    leading ``'`` (OWASP's advice), unless it is a plain number (``-62.3`` stays a
    number). NUL, which CSV readers reject, becomes U+FFFD. Quoting is the ``csv``
    module's job. None is the empty cell.
    """
    text = "" if value is None else str(value).replace("\x00", "\ufffd")
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document: ``header``, then ``rows``, every cell through :func:`csv_cell`.

    Lines end with CRLF, as RFC 4180 has it: with that terminator the ``csv`` module
    quotes a cell holding a lone carriage return on every Python version, so any text
    reads back as one cell.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return buf.getvalue()


# -- YAML ----------------------------------------------------------------------------------

_YAML_NAMED = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def _yaml_printable(ch: str) -> bool:
    """YAML 1.2's printable set, less C1 controls, line separators and the BOM."""
    if ch in "\u2028\u2029\ufeff\ufffe\uffff":
        return False
    return " " <= ch <= "~" or "\u00a0" <= ch <= "\ud7ff" or "\ue000" <= ch


def yaml_string(text: object) -> str:
    """A YAML double-quoted scalar that loads back as ``text`` (one line, any character).

    Surrogates, which no YAML stream may hold, become U+FFFD.
    """
    out = ['"']
    for ch in str(text):
        if ch in _YAML_NAMED:
            out.append(_YAML_NAMED[ch])
        elif "\ud800" <= ch <= "\udfff":
            out.append("\ufffd")
        elif _yaml_printable(ch):
            out.append(ch)
        elif ch <= "\xff":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    out.append('"')
    return "".join(out)


# -- plots ---------------------------------------------------------------------------------

#: Longest label drawn on a plot (a title or a legend entry); longer ones are shortened.
PLOT_LABEL_MAX = 100


def plot_text(text: object) -> str:
    """A label for a matplotlib plot: one line, control characters as spaces, shortened.

    Math is not parsed by escaping (a backslash before ``$`` would be drawn as it is
    when math is off): the plotter sets ``parse_math=False`` and ``usetex=False`` on
    every text it draws from a report.
    """
    flat = _CONTROL.sub(" ", str(text))
    if len(flat) > PLOT_LABEL_MAX:
        flat = flat[: PLOT_LABEL_MAX - 1] + "\u2026"
    return flat
