import sys

from mentor_pipeline.cli import main

sys.exit(main())
