"""Entry point of the frozen (PyInstaller) application: ``keras-explorer`` with the same arguments as the
``keras-explorer`` console script.

The live-tier worker and the export verification are started with multiprocessing's "spawn" method. In a
frozen app, spawn re-executes this very binary with ``--multiprocessing-fork ...`` (and the resource tracker
with ``-c 'from multiprocessing.resource_tracker import main...'``); ``freeze_support()`` recognises those
arguments, runs the child's target and exits, so the command line below is never parsed in a child.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from explorer.cli import main

    sys.exit(main())
