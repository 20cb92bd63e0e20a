"""`python -m afford.cli` runs the CLI (as `python -m afford` does)."""

from afford.cli.app import main

if __name__ == "__main__":
    main()
