"""``python -m unicity_infra``: the same CLI as the ``unicity-infra`` command."""

from unicity_infra.cli import main

main()
