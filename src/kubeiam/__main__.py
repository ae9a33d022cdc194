"""``python -m kubeiam``."""

from kubeiam.cli.main import main

main()
