"""``python -m finetune_advisor.cli``: the same as the ``finetune-advisor`` command."""
import sys

from .app import main

sys.exit(main())
