"""One report from the analyses: the pipeline, its results, sections, summary and figures.

* :mod:`.pipeline` -- ``analyse``: one call, one small function per built-in section;
* :mod:`.section`, :mod:`.sections` -- a report section as one value, and the registry;
  :mod:`.section_thermodynamics`, :mod:`.section_fluctuation` -- the registered sections;
* :mod:`.results` -- :class:`~crnfb.analysis.reporting.results.Results` and ``report.json``;
* :mod:`.summary` -- the summary as text, Markdown and HTML;
* :mod:`.figures`, :mod:`.plots` -- the report's figures and the drawing functions.
"""
