"""``python -m entrypoints``: the same as the ``hounsfield`` command."""

from entrypoints.cli import main

if __name__ == "__main__":
    main()
