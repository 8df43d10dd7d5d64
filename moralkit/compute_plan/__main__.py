"""``python -m moralkit.compute_plan``: the plan as Markdown, or written into a page."""

from moralkit.compute_plan.plan import main

if __name__ == "__main__":  # importing it (the tests walk every module) runs nothing
    raise SystemExit(main())
