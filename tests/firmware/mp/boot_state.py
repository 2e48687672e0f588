# Prints the boot guard's state in the cwd: boots, safe entries in a row, reason.
from fp import bootguard

n, k, reason = bootguard._read()
print(n, k, reason)
