"""One blueprint per concern."""

# A path id that fits a SQLite INTEGER; anything larger is simply not found (404), never a crash.
ROW_ID = "int(max=9223372036854775807)"
