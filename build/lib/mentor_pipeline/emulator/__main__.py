"""`python -m mentor_pipeline.emulator ...` = `mentor-pipeline emulator ...`."""

import sys

from mentor_pipeline.cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
