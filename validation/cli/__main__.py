import sys

from lowrank_icl.validation.cli.main import main

sys.exit(main())
