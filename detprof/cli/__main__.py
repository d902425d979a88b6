"""``python -m detprof.cli``: the command line, as the ``detprof`` script runs it."""

from detprof.cli import app

app()
