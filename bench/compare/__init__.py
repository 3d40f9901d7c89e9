"""``python -m bench.compare A B``: two sweep directories side by side (before and after a change, CPU against
GPU, soft against hard routing).

    core    the shared configurations, each metric's difference and its bootstrap interval
    render  compare.md and compare.html
    cli     the command line
"""
