"""``python -m edge``: the ``fieldpost`` command (what the Debian package's /usr/bin/fieldpost runs)."""

from edge.cli import main

main(prog_name="fieldpost")
