"""Firmware updates of modules in the field: update bundles, packages (full or delta) and the
edge's store of the bundles it has kept. Transfers (serial for bridges, air for nodes) build on it.
"""
