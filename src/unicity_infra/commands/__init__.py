"""The work behind each CLI command, as functions that return data; ``cli.py`` renders it."""
