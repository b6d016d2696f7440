"""`python -m service` is the `ddbridge` command."""

from service.cli import main

main()
