"""`python -m mentor_pipeline.emulator ...` = `mentor-pipeline emulator ...`."""

import sys

from mentor_pipeline.emulator.command import main

sys.exit(main())
