"""`python -m afford` runs the CLI."""

from afford.cli import main

if __name__ == "__main__":
    main()
