"""Deprecated alias, kept for one release: problems moved to the `problems` package, the cursor to rl.prompt_cursor.

Import from `problems` (`from problems import Problem, build_prompt, load_split`) and `rl.prompt_cursor`.
"""

from problems import *  # noqa: F401,F403 - the old names, re-exported unchanged
from problems import __all__ as _problem_names
from rl.prompt_cursor import PromptCursor

__all__ = [*_problem_names, "PromptCursor"]
