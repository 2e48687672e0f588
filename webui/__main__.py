"""python -m webui serve --db /var/lib/fieldpost/fieldpost.db --port 8080"""

from webui.cli import standalone

standalone(prog_name="python -m webui")
