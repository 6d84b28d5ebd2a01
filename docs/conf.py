"""Sphinx configuration for the Flask-CoCart-JWT documentation.

Built with ``make docs`` (``sphinx-build -W``): every warning is an error.
No extension here needs the network.
"""

from __future__ import annotations

from pallets_sphinx_themes import ProjectLink, get_version

# -- Project ---------------------------------------------------------------

project = "Flask-CoCart-JWT"
copyright = "2025, the Flask-CoCart-JWT authors"
author = "the Flask-CoCart-JWT authors"
release, version = get_version("Flask-CoCart-JWT")

# -- General ---------------------------------------------------------------

master_doc = "index"
default_role = "code"
# Included by benchmarks.rst, not a page of its own.
exclude_patterns = ["_build", "benchmarks-results.rst"]
extensions = [
    "sphinx.ext.autodoc",
    "pallets_sphinx_themes",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
# The docs are built offline: the version banner script asks PyPI for the
# newest release, so leave it out.
version_banner = False

# -- HTML ------------------------------------------------------------------

html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_context = {
    "project_links": [
        ProjectLink("Configuration", "configuration.html"),
        ProjectLink("Security model", "security.html"),
        ProjectLink("Changes", "changes.html"),
    ]
}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
singlehtml_sidebars = {"index": ["project.html", "localtoc.html"]}
html_title = f"Flask-CoCart-JWT Documentation ({version})"
html_show_sourcelink = False
html_static_path: list[str] = []


# -- Signals ---------------------------------------------------------------


def _signal_docs(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    """Document a re-exported signal with its ``#:`` comment in ``signals.py``.

    autodoc finds ``#:`` comments only in the module that holds them, so
    ``flask_cocart_jwt.tokens_issued`` would show blinker's class docstring.
    """
    from blinker import Signal
    from sphinx.pycode import ModuleAnalyzer

    if what != "data" or not isinstance(obj, Signal):
        return
    attr_docs = ModuleAnalyzer.for_module("flask_cocart_jwt.signals").find_attr_docs()
    comment = attr_docs.get(("", name.rpartition(".")[2]))
    if comment:
        lines[:] = list(comment)


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-docstring", _signal_docs)
