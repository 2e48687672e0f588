"""Let the bundled virtual environment import the Pi's GPIO libraries from Debian, and nothing else.

gpiozero needs a pin library: on a Raspberry Pi 5 only lgpio works, and Raspberry Pi OS
ships it as the Debian package python3-lgpio (a Recommends of fieldpost on arm64/armhf).
The environment is otherwise isolated from /usr/lib/python3/dist-packages, so this finder,
loaded by fieldpost_system_gpio.pth, opens that folder to these top-level names only.
Anything the environment has itself comes first: the finder is the last one asked.
"""

import importlib.machinery
import sys

SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
ALLOWED = ("lgpio", "_lgpio", "RPi")  # python3-lgpio; python3-rpi.gpio (older Pis)


class SystemGpioFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if path is not None or name not in ALLOWED:
            return None  # submodules are found through their package's own path
        return importlib.machinery.PathFinder.find_spec(name, [SYSTEM_DIST_PACKAGES])


sys.meta_path.append(SystemGpioFinder)
