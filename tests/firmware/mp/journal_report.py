# Replays ./journal as after a reboot and prints what it found, as JSON.
import json

from fp.journal import Journal

j = Journal("journal")
print(json.dumps({"pending": j.pending(), "dropped": j.dropped, "bad": j.bad, "segments": j.segs}))
