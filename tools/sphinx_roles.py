"""Griffe extension for the API page: the docstrings' Sphinx markup, as Markdown.

The docstrings are numpy-style (griffe parses the sections) but their prose
uses Sphinx roles (``:func:`crnfb.analysis.reporting.pipeline.analyse```) and ``::``
before literal blocks, which Markdown would print as they stand. This turns a
role into inline code (``~a.b.c`` shows ``c``, as in Sphinx) and ``text::``
into ``text:``; the indented block that follows is already a Markdown code
block. The code keeps one docstring convention; only the rendering changes.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(?m)(\S)::[ \t]*$")
_BARE_LITERAL = re.compile(r"(?m)^[ \t]*::[ \t]*\n")


def _role(m: re.Match) -> str:
    target = m.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def to_markdown(text: str) -> str:
    """``text`` with Sphinx roles as inline code and ``::`` literal markers as ``:``."""
    text = _ROLE.sub(_role, text)
    text = _BARE_LITERAL.sub("\n", text)
    return _LITERAL.sub(r"\1:", text)


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring with :func:`to_markdown` when griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
