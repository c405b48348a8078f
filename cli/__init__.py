"""The command line, on top of everything: ``prernn-sweep`` (or ``python launch/sweep.py``).

    main.py      arguments, dispatch, exit codes
    run.py       run a sweep (or a search) on a backend; dry runs; --until-decided
    show.py      status, cancel, report, and the summary printed after a run
    seeding.py   which seeds --until-decided adds;  progress.py  the live progress bar
"""
