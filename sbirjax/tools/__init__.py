"""Tools on finished runs, each a command: python -m sbirjax.tools.<name>."""
