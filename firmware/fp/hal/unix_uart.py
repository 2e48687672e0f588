# The serial link's UART on the MicroPython unix port (virtual modules).
#
# API, the subset of machine.UART that fp/linkio.py uses:
#   uart = UnixUART(fd=None)        fd: the pty master; default from env FP_UART_FD, else 0/1
#   uart.readinto(buf) -> int       bytes read now, 0 when none (never blocks)
#   uart.write(data) -> int         bytes accepted now, 0 when the pty is full (never blocks)
#   uart.close()
#
# How it works, and why (measured with MicroPython 1.29's unix port):
# - edge.sim opens a pty pair, puts the slave in raw mode, and hands the MASTER fd to
#   micropython as an extra inherited fd (FP_UART_FD). The edge opens the slave path
#   (/dev/pts/N) with pyserial, exactly like /dev/ttyUSB0. stdout/stderr stay free, so a
#   stray print() lands in the captured log instead of corrupting the link.
# - The unix port has no fcntl and no os.read/os.write; open(fd, "r+b") wraps an inherited
#   fd as a FileIO. On a blocking fd, FileIO.readinto(buf) waits until buf is FULL (tested:
#   64-byte buffer, 3 bytes available -> blocked until 61 more came). So edge.sim sets
#   O_NONBLOCK on the master before exec (the flag lives on the open file description,
#   which the child shares). Non-blocking readinto returns None when nothing is there and
#   write returns a short count (or None) when the pty buffer is full.
# - When no one has the slave open (edge not attached yet, or "unplugged"), poll reports
#   POLLHUP and readinto raises OSError(EIO); writes are accepted and discarded. Like a real
#   UART with nothing on the other end: we read nothing and keep running.
# - Without O_NONBLOCK (fd given by hand, e.g. stdin/stdout bound to a tty), we fall back to
#   select.poll + one byte per read, which never blocks but is slow.
import select

_EAGAIN = 11
_EIO = 5


class UnixUART:
    def __init__(self, fd=None, nonblocking=None):
        if fd is None:
            import os
            v = os.getenv("FP_UART_FD")
            fd = int(v) if v else None
            if nonblocking is None:
                nonblocking = fd is not None  # edge.sim sets O_NONBLOCK when it passes the fd
        if fd is None:
            import sys
            self._rx = sys.stdin.buffer
            self._tx = sys.stdout.buffer
            rx_fd = 0
        else:
            self._rx = self._tx = open(fd, "r+b")  # noqa: SIM115 - lives as long as the UART
            rx_fd = fd
        self._nonblocking = bool(nonblocking)
        self._poll = select.poll()
        self._poll.register(rx_fd, select.POLLIN)
        self._one = bytearray(1)

    def _readable(self):
        for _, ev in self._poll.poll(0):
            if ev & select.POLLIN:
                return True
        return False

    def readinto(self, buf):
        try:
            if self._nonblocking:
                n = self._rx.readinto(buf)
                return n or 0
            n = 0
            one = self._one
            while n < len(buf) and self._readable():
                if not self._rx.readinto(one):
                    break
                buf[n] = one[0]
                n += 1
            return n
        except OSError as e:
            if e.args[0] in (_EAGAIN, _EIO):  # nothing there / nobody on the other end
                return 0
            raise

    def write(self, data):
        try:
            n = self._tx.write(data)
            if not self._nonblocking:
                self._tx.flush()
            return n or 0
        except OSError as e:
            if e.args[0] in (_EAGAIN, _EIO):
                return 0
            raise

    def close(self):
        self._poll.unregister(self._rx.fileno())
        self._rx.close()
