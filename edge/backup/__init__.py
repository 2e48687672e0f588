"""Backups of the buffer database: online, checked, scheduled (daily, weekly), restorable.

``copy`` makes one checked backup; ``schedule`` decides (pure); ``records`` is the ``backups``
table; ``service`` runs the schedule in the daemon; ``restore`` puts a backup back.
"""
