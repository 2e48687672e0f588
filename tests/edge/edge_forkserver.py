"""Start edge daemons fast, for the kill -9 test: import once, fork per start.

Run as ``python edge_forkserver.py CONFIG``. Each line ``start`` on stdin forks a
child that runs the real daemon (edge.daemon.Daemon(config).run_forever()) and
answers ``pid <n>``; ``wait <pid>`` reaps it and answers ``status <n>``. The parent
has no threads when it forks, so every child is an ordinary, complete daemon
process; only the Python start-up and imports are skipped.
"""

from __future__ import annotations

import os
import sys

from edge import config as config_mod
from edge import logs
from edge.daemon import Daemon


def main() -> None:
    path = sys.argv[1]
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "start":
            pid = os.fork()
            if pid == 0:
                # stdout is the parent's answer channel: the daemon's logs go to stderr
                os.dup2(2, 1)
                sys.stdout = sys.stderr
                code = 0
                try:
                    cfg = config_mod.load(path)
                    logs.setup(cfg.log.level, timestamps=cfg.log.timestamps)
                    Daemon(cfg).run_forever()
                except BaseException:  # report and leave with a failure code
                    import traceback

                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            print(f"pid {pid}", flush=True)
        elif cmd == "wait":
            _, status = os.waitpid(int(args[0]), 0)
            print(f"status {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()


class ForkedEdges:
    """The test side: start daemons through the fork server, SIGKILL or SIGTERM them, reap them."""

    def __init__(self, config_path, *, cwd, env, log_file):
        import subprocess
        from pathlib import Path

        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), str(config_path)],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
        self.pid: int | None = None

    @classmethod
    def for_port(cls, workdir, db_path, port, *, log_file) -> ForkedEdges:
        """Daemons on ``db_path`` with ``port`` as their only link (no discovery, services or HTTP
        server), their config file and working directory in ``workdir``."""
        from pathlib import Path

        cfg = Path(workdir) / "fieldpost.toml"
        cfg.write_text(
            f'[edge]\ndb = "{db_path}"\nservices = false\n[link]\nports = ["{port}"]\ndiscover = false\n'
            '[http]\nenabled = false\n[log]\nlevel = "WARNING"\ntimestamps = true\n'
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        return cls(cfg, cwd=workdir, env=env, log_file=log_file)

    def _ask(self, line: str) -> int:
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return int(self._proc.stdout.readline().split()[1])

    def start(self) -> int:
        self.pid = self._ask("start")
        return self.pid

    def stop(self, sig) -> int:
        """Send ``sig`` to the running daemon and reap it; its exit code (-sig when killed)."""
        os.kill(self.pid, sig)
        code = self._ask(f"wait {self.pid}")
        self.pid = None
        return code

    def close(self) -> None:
        import signal

        if self.pid is not None:
            self.stop(signal.SIGKILL)
        self._proc.stdin.close()
        self._proc.wait(10)
        self._proc.stdout.close()
