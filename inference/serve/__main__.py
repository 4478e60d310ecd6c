import sys

from inference.serve.cli import main

sys.exit(main())
