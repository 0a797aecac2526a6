"""`python -m cli ...`: the `threadline` command, as the supervisor spawns its services
(`python -m cli serve NAME`), with the interpreter that runs the supervisor."""

from cli.main import main

raise SystemExit(main())
