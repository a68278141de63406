"""The `slic` command line: Typer commands over the `stages` library."""
