"""Command-line interface (typer).  Thin: parsing, progress and output only; the logic lives in the modules.

One module per command group -- :mod:`~vmibench.cli.models_flops`, :mod:`~vmibench.cli.measure`,
:mod:`~vmibench.cli.results`, :mod:`~vmibench.cli.accuracy` and the ``check`` sub-app
:mod:`~vmibench.cli.check` -- over :mod:`~vmibench.cli.options` (parsers, option aliases) and
:mod:`~vmibench.cli.progress`.  This module builds the app from them; none of them imports it.

Every user error -- unknown model, resolution a model does not accept, malformed list, unreadable checkpoint --
is printed as one line ``vmibench: error: ...`` with exit status 2 and no traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vmibench.cli.accuracy import accuracy_cmd
from vmibench.cli.check import check_app
from vmibench.cli.measure import PROFILE_HELP, collect_cmd, latency_cmd, maxbatch_cmd, ops_cmd, profile_cmd, sweep_cmd
from vmibench.cli.models_flops import FLOPS_HELP, flops_cmd, models_cmd
from vmibench.cli.options import METRICS_HELP, verbatim
from vmibench.cli.results import compare_cmd, publish_cmd, report_cmd, results_cmd
from vmibench.errors import UserError
from vmibench.measure.interrupt import Interrupted

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="vmibench: FLOPs, latency, memory and accuracy of VMINet and its rivals under one protocol.",
)
app.add_typer(check_app, name="check")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"vmibench {version('vmibench')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            print("vmibench (not installed; running from a checkout)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """vmibench: FLOPs, latency, memory and accuracy of VMINet and its rivals under one protocol."""


# The commands in the order `vmibench --help` lists them (`check` comes last, as a group).
app.command("models")(models_cmd)
app.command("flops", epilog=verbatim(FLOPS_HELP))(flops_cmd)
app.command("latency", epilog=verbatim(METRICS_HELP))(latency_cmd)
app.command("maxbatch", epilog=verbatim(METRICS_HELP))(maxbatch_cmd)
app.command("profile", epilog=verbatim(PROFILE_HELP))(profile_cmd)
app.command("results")(results_cmd)
app.command("sweep", epilog=verbatim(METRICS_HELP))(sweep_cmd)
app.command("collect")(collect_cmd)
app.command("ops", epilog=verbatim(METRICS_HELP))(ops_cmd)
app.command("compare")(compare_cmd)
app.command("report")(report_cmd)
app.command("publish")(publish_cmd)
app.command("accuracy")(accuracy_cmd)


# -- entry point ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app and turns user errors into one line + exit status 2."""
    import logging

    # torch.utils.benchmark imports cpp_extension, which warns about CUDA_HOME on CPU-only machines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        rv = app(args=argv, prog_name="vmibench", standalone_mode=False)
    except UserError as exc:
        _fail(str(exc))
    except Interrupted as exc:
        print(f"vmibench: interrupted: {exc.stored} rows stored in DB; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        # Ctrl-C outside a run (while importing, between runs): nothing was being measured
        print("vmibench: interrupted: rows measured so far are stored in DB; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except Exception as exc:
        # Usage errors come from click, or from the copy of click newer typer releases vendor: match by class name.
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        if "NoArgsIsHelpError" in kinds:
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                print(ctx.get_help())
            sys.exit(0)
        if "ClickException" in kinds:
            _fail(" ".join(exc.format_message().split()))  # type: ignore[attr-defined]
        if "Abort" in kinds:
            print("vmibench: interrupted: rows measured so far are stored in DB; rerun the same command to resume",
                  file=sys.stderr)  # fmt: skip
            sys.exit(130)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str) -> None:
    print(f"vmibench: error: {message}", file=sys.stderr)
    sys.exit(2)
