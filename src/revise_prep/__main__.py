from revise_prep.cli import main

raise SystemExit(main())
