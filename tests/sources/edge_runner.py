"""The edge daemon with only the sources attached: ``python edge_runner.py CONFIG`` (the tests kill it)."""

import sys

from edge import config as config_mod
from edge import logs
from edge.daemon import Daemon

if __name__ == "__main__":
    cfg = config_mod.load(sys.argv[1])
    logs.setup(cfg.log.level)
    Daemon(cfg, attach_points=("edge.sources.service:attach",)).run_forever()
