"""``python -m moralkit.compute_plan``: the plan as Markdown, or written into a page."""

from moralkit.compute_plan.plan import main

raise SystemExit(main())
