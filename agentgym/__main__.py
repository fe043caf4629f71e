"""``python -m agentgym``: the same as the ``agentgym`` command."""

from agentgym.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
