"""``python -m monitor``: the documented way to run the command line: a shim to the ``cli`` package."""

if __name__ == "__main__":
    from cli import main  # imported only when run: monitor itself never reaches above its layer

    main()
