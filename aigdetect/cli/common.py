"""What every command shares: one-line errors with exit codes, and the signals a long run must survive.

Exit codes: 0 success, 2 for usage and input errors (anything the user can fix: a bad option, a
missing file, an unwritable output), 1 for internal failures, 130 after Ctrl-C and 143 after
SIGTERM (rows written so far are kept), and 141 when the reader of stdout went away.
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import typer
from typer.core import TyperArgument, TyperGroup

from ..errors import AigdetectError
from .options import render

F = TypeVar("F", bound=Callable[..., Any])

DEBUG_ENV = "AIGDETECT_DEBUG"
EXIT_SIGPIPE = 141
EXIT_SIGTERM = 143
COMPLETE_VAR = "_AIGDETECT_COMPLETE"


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler, so a terminated run unwinds (flushing its rows) like Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def plural(count: int, noun: str) -> str:
    """``1 error``, ``2 errors``: a count and its noun (regular plurals only)."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error to stderr (settings shown as flags) and return the Exit to raise."""
    typer.echo(f"error: {render(one_line(message))}", err=True)
    return typer.Exit(code)


def _os_error(exc: OSError) -> typer.Exit:
    if exc.errno == errno.EPIPE:
        _silence_stdout()
        return typer.Exit(EXIT_SIGPIPE)
    where = f"{os.fsdecode(exc.filename)}: " if exc.filename else ""
    return fail(f"{where}{exc.strerror or exc}")


def _silence_stdout() -> None:
    """The reader of stdout is gone: point stdout at /dev/null so the interpreter's final flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def command_line(ctx: typer.Context) -> str:
    """The invocation as the user would retype it: the command path, arguments and non-default options."""
    words = ["aigdetect", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.param_type_name == "argument":
            words.extend(str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v is not None)
        elif isinstance(value, (list, tuple)):
            for item in value if list(value) != list(param.default or ()) else ():
                words += [param.opts[0], str(item)]
        elif value is not None and value != param.default:
            if isinstance(value, bool):
                words += (param.opts if value else param.secondary_opts)[:1]
            else:
                words += [param.opts[0], str(value)]
    return shlex.join(words)


def cli_errors(func: F) -> F:
    """Turn library errors into one line and an exit code: 2 for the user's input, 1 for our bugs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except AigdetectError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except Terminated:
            typer.echo("terminated", err=True)
            raise typer.Exit(EXIT_SIGTERM) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except OSError as exc:
            raise _os_error(exc) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise fail(
                f"internal error: {type(exc).__name__}: {detail} (set {DEBUG_ENV}=1 for the traceback)", 1
            ) from None

    return wrapper  # type: ignore[return-value]


class NamedArgument(TyperArgument):
    """An argument that ``-h`` shows by its metavar alone: typer would add the Python type
    (``PATH <list[str]>``), which tells a user nothing."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None if self.metavar else super().display_type_rich(ctx)


def _name_arguments(command: click.Command) -> None:
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = NamedArgument
    for sub in getattr(command, "commands", {}).values():
        _name_arguments(sub)


class OneLineGroup(TyperGroup):
    """The root command: usage errors (an unknown option, a bad value, a mistyped command) are one
    line and exit 2, like every other error, instead of click's boxed usage text; arguments show
    their names in ``-h`` without Python types."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_arguments(self)

    def main(self, args: Sequence[str] | None = None, *rest: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        words = list(sys.argv[1:] if args is None else args)
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
        try:
            if not words and COMPLETE_VAR not in os.environ:
                with self.make_context(kwargs.get("prog_name") or "aigdetect", ["--help"], resilient_parsing=True) as ctx:
                    typer.echo(self.get_help(ctx))
                code = 0
            else:
                code = super().main(words, *rest, standalone_mode=False, **kwargs)
        except typer.TyperException as exc:
            context = getattr(exc, "ctx", None)
            hint = f" (see '{context.command_path} -h')" if context is not None else ""
            typer.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
            code = getattr(exc, "exit_code", 2)
        except typer.Abort:
            typer.echo("aborted", err=True)
            code = 1
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            _silence_stdout()
            code = EXIT_SIGPIPE
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def with_options(*groups: Callable[..., None]) -> Callable[[F], F]:
    """Give a command the options that ``groups`` declare (functions whose signatures are the options,
    written once), after its own positional ones; Typer reads the signature and the annotations, and the command
    takes the groups' values as ``**options``."""

    def attach(command: F) -> F:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        shared = [p for group in groups for p in inspect.signature(group, eval_str=True).parameters.values()]
        ordered = sorted([*own, *shared], key=lambda p: p.kind)  # keyword-only options after the others
        command.__signature__ = inspect.Signature(ordered)  # type: ignore[attr-defined]
        command.__annotations__ = {**{k: v for g in groups for k, v in g.__annotations__.items()}, **command.__annotations__}
        return command

    return attach
