"""``python -m edge.sync run --db ... --config ...`` (same as ``fieldpost sync``)."""

from edge.sync.cli import main

main()
