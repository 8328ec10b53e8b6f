"""``python -m layerflow.cli``: the same command line as ``layerflow``."""

from layerflow.cli import main

main()
