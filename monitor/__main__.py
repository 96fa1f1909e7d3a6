"""``python -m monitor``: the documented way to run the command line: a shim to the ``cli`` package."""

from cli import main

if __name__ == "__main__":
    main()
