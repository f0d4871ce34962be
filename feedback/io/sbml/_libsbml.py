"""The libsbml handle, the ``crnfb`` annotation namespace and the export warning class."""

from __future__ import annotations

from ...errors import ModelError

try:  # python-libsbml is a hard dependency (pyproject), but fail with a clear message
    import libsbml
except ImportError:  # pragma: no cover
    libsbml = None

__all__ = ["CRNFB_NS", "COMPARTMENT", "SBMLExportWarning", "libsbml", "need_libsbml"]

#: XML namespace of the ``crnfb`` annotations.
CRNFB_NS = "urn:crn-feedback:sbml:1"
#: The one compartment (volume 1) of every exported network.
COMPARTMENT = "cell"


class SBMLExportWarning(UserWarning):
    """The exported SBML differs from the model in a documented way (e.g. an approximation)."""


def need_libsbml() -> None:
    """Raise :class:`ModelError` with the install command if python-libsbml is missing."""
    if libsbml is None:  # pragma: no cover
        raise ModelError("python-libsbml is not installed; `pip install python-libsbml`")
