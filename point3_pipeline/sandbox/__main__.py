"""`python -m point3_pipeline.sandbox`: the same as `point3 sandbox`."""

import sys

from point3_pipeline.sandbox.server import main

sys.exit(main())
