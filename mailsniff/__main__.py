"""`python -m mailsniff`."""

from mailsniff.cli import main

if __name__ == "__main__":
    main()
