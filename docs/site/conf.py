# Sphinx configuration of the collection's docs site (`make docs`). Started from
# `antsibull-docs sphinx-init`; intersphinx is left out because its inventories live on the network.
# Every reference inside the site must resolve (nitpicky, warnings are errors); references to other
# collections' plugins and to the Ansible docsite (common_return_values,
# ansible_configuration_settings) can only resolve through those inventories, so offline they
# render as text and are the only ones not checked.
project = "votingapp.stack"
copyright = "votingapp.stack maintainers"
title = "votingapp.stack"
html_short_title = "votingapp.stack"
extensions = ["sphinx_antsibull_ext", "myst_parser"]
# The README's quickstart and the playbook pages are generated as Markdown (scripts/docs_pages.py).
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
pygments_style = "ansible"
highlight_language = "YAML+Jinja"
html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
default_role = "any"
nitpicky = True
nitpick_ignore_regex = [
    ("std:ref", r"ansible_collections\.(?!votingapp\.stack\.).*"),
    ("std:ref", r"common_return_values|ansible_configuration_settings"),
]
