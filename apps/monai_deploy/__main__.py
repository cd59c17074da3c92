"""``python -m apps.monai_deploy -i <dicom folder> -o <output> -m <serving folder>``, or ``python apps/monai_deploy``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from app import main  # noqa: E402

if __name__ == "__main__":
    main()
