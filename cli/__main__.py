"""`python -m cli`: the same as the `dockercise` command."""

from cli.main import main

main()
