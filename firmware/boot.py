# Runs first on a board. Keep it tiny: anything that fails here happens before
# the boot counter and safe mode can help. The unix port does not run it.
import gc

gc.collect()
