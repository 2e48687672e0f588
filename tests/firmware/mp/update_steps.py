# Drive firmware/fp/update.py under micropython, with power cuts at a chosen step.
#   update_steps.py <root> stage <package> <board> <running>
#   update_steps.py <root> boot [<cut after N file operations>]
# A power cut stops the process after N renames/removes (the filesystem operations the updater
# makes durable steps of): "cut" is printed and nothing after that step happens.
import json
import sys

from fp import store, update


class PowerCut(Exception):
    pass


class CutOs:
    def __init__(self, real, after):
        self.real = real
        self.left = after

    def __getattr__(self, name):
        return getattr(self.real, name)

    def _step(self):
        if self.left == 0:
            raise PowerCut()
        self.left -= 1

    def rename(self, a, b):
        self._step()
        self.real.rename(a, b)

    def remove(self, p):
        self._step()
        self.real.remove(p)

    def rmdir(self, p):
        self._step()
        self.real.rmdir(p)


root, action = sys.argv[1], sys.argv[2]
if not root.endswith("/"):
    root += "/"
if action == "stage":
    try:
        print("staged", update.Updater(root, sys.argv[5]).stage(sys.argv[3], sys.argv[4]))
    except update.UpdateError as e:
        print("refused", e)
elif action == "boot":
    if len(sys.argv) > 3:
        cut = CutOs(update.os, int(sys.argv[3]))
        update.os = cut
        store.os = cut
    try:
        print("boot", update.Updater(root).at_boot())
    except PowerCut:
        print("cut")
elif action == "confirm":
    print("confirmed", update.Updater(root).confirm())
elif action == "result":
    print("result", json.dumps(update.Updater(root).last_result()))
