"""Jupyter: ``Results._repr_html_`` and the worked notebook ``docs/e3_hidden_units.ipynb`` (executed here)."""

from __future__ import annotations

import base64
import io
import re
from html import escape
from pathlib import Path

import pytest

import crnfb
from crnfb.analysis.reporting.figures import NOTEBOOK_FIGURES

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "e3_hidden_units.ipynb"


def test_results_render_in_jupyter(e1):
    res = crnfb.analyse(e1, validate=False)
    html = res._repr_html_()
    assert not html.lstrip().lower().startswith("<!doctype")       # a fragment for a notebook cell
    assert "verdict-ok" in html and "STABLE" in html
    # the summary's tables, as report.html has them
    summary = res.summary()
    assert summary.tables
    for table in summary.tables:
        assert escape(table.title) in html
        for row in table.rows[:3]:
            assert all(escape(cell) in html for cell in row), row
    # the key figures inline: real PNGs, drawn at the notebook's resolution
    from matplotlib.image import imread
    images = re.findall(r"<img alt='([a-z_]+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", html)
    assert [name for name, _ in images] == list(NOTEBOOK_FIGURES)
    for name, data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n", name
        img = imread(io.BytesIO(png))
        assert img.shape[1] > 400 and img.std() > 0.05, name       # a drawn figure, not a blank one


@pytest.mark.slow
def test_worked_notebook_executes():
    """The E3 notebook runs top to bottom (its cells assert the claims its text makes)."""
    nbformat = pytest.importorskip("nbformat", reason="the test extra's notebook tools are not installed")
    nbclient = pytest.importorskip("nbclient", reason="the test extra's notebook tools are not installed")
    pytest.importorskip("ipykernel", reason="the test extra's notebook tools are not installed")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "docs/e3_hidden_units.ipynb is stored with outputs; clear them (the docs build executes it)"
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type == "execute_result" and "text/html" in o.get("data", {})]
    assert len(shown) == 1                                                          # res displayed itself:
    html = shown[0]["data"]["text/html"]                                            # the report's head, inline
    assert "Stability report: hidden-scaffold" in html and html.count("data:image/png;base64,") == len(
        NOTEBOOK_FIGURES)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "eps_crit" in text and "episode total" in text
