"""The framework backends' implementations, one package each (torch, tf). Nothing outside this
package imports them: the
protocol and the table of backends are ``detprof.backend``, which loads an implementation by name
when it is asked for, so that the trace commands import neither framework.
"""
