"""``python -m layerflow.ui --runs-dir DIR --port N``: the UI process ``layerflow run --view`` starts."""

from layerflow.ui import _main

_main()
