import sys

from cemrecon.cli import main

sys.exit(main())
