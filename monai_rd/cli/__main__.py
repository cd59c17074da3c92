import sys

from monai_rd.cli import main

sys.exit(main())
