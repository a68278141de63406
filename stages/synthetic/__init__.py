"""The built-in demo data: actions told apart by motion alone."""
