"""What each CLI command does, as functions that return data; ``cli.py`` renders it."""
