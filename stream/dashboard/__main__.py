import sys

from stream.dashboard.cli import main

sys.exit(main())
