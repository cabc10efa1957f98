"""``python -m lazystitch``."""

from lazystitch.cli import main

if __name__ == "__main__":
    main()
