# Prints the encoded size of the standard reading at the extremes of each field.
from fp import lpp

for t, h, b in ((21.5, 48.5, 3.71), (-3276.8, 0, -327.68), (3276.7, 127.5, 327.67), (1e9, 1e9, -1e9)):
    print(len(lpp.standard_reading(t, h, b)))
