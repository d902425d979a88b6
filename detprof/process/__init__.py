"""Child processes and the machine they run on: fresh processes forked from a fork server or new
interpreters, with a timeout and the parent's death watched (processes), and what the host is and
how much memory a process took (host). Below every other package: backends, runner, check,
stability and sweep all start their children here.
"""
