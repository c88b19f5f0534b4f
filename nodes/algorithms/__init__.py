"""Pure torch algorithms of the LongAnim pack.

Nothing in this package imports ComfyUI (``comfy``, ``comfy_api``, ``folder_paths``, ``server``,
``nodes``, ``execution``); every module is importable and unit-testable on a bare CPU machine.
One module per technique; see each module's docstring for the paper and equation numbers.
"""
