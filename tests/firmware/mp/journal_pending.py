# Prints the fcnts the journal in ./journal still holds (replayed as after a reboot).
import json

from fp.journal import Journal

print(json.dumps(Journal("journal").pending()))
