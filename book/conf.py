"""Sphinx configuration of the dl-interview-lab book (built by `make book`; see tools/book.py).

Notebooks are rendered as executed by `make book` (myst-nb never executes them). MathJax, RequireJS and
the widget manager are served from the site itself, so pages make no request off the machine.
"""
import os

project = "dl-interview-lab"
author = "dl-interview-lab contributors"
copyright = "2026, dl-interview-lab contributors"  # noqa: A001 - Sphinx's name for it

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

nb_execution_mode = "off"
nb_render_markdown_format = "myst"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_ipywidgets_js = {
    "vendor/require.js": {},
    "vendor/embed-amd.js": {"data-jupyter-widgets-cdn-only": "false"},
}
mathjax_path = "vendor/mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_title = "dl-interview-lab"
html_static_path = ["_static"]
html_extra_path = [path for path in ["_extra"] if os.path.isdir(path)]  # the widget manager's icon fonts
html_css_files = ["book.css"]
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": True,
    "navigation_with_keys": False,
}
html_last_updated_fmt = ""
suppress_warnings = ["mystnb.unknown_mime_type"]
