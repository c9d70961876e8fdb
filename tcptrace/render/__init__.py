"""Rendering: turns analysed runs into JSON, terminal ladders and tables. Nothing here
captures or reads files."""
