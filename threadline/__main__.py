from threadline.cli import main

raise SystemExit(main())
