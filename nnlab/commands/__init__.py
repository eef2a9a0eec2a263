"""The command line: parsing, help pages, and the commands that call the library."""
